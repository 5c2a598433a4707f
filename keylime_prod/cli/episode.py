"""The per-episode commands: ``produce EPISODE`` (every stage) and one command per stage, in flow order.

Each runs the pipeline up to its stage (earlier stages run too when out of date; cached ones are only loaded), so
what it prints is never stale.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import whisper_settings
from .app import Cli, EpisodeArg, Reply, command


def run_stages(cli: Cli, episode: str, upto: str | None, overrides: dict[str, Any] | None = None) -> Reply:
    """Run the pipeline for ``episode`` up to ``upto`` (all of it for None) and say what each artefact says about
    itself. The pipeline logs each stage as it starts and ends; nothing here reports it again."""
    from ..pipeline import run_episode
    from .release import print_published

    settings = cli.settings(**(overrides or {}))
    with cli.progress() as progress:
        result = run_episode(
            settings, episode, upto=upto, force=cli.force, progress=progress, on_stage=partial(cli.on_stage, episode)
        )
    art = result.artefacts
    if art.get("master") is not None:
        cli.say(art["master"].describe())
    if art.get("edit") is not None and art["edit"].candidates:
        cli.say(art["edit"].describe())
    if art.get("tag") is not None:
        cli.say(f"{result.episode_id}: {art['tag'].describe()}")
    if art.get("report") is not None:
        cli.say(art["report"].describe())
    if art.get("publish") is not None:
        print_published(cli, art["publish"])
    offers = getattr(art.get("transcribe"), "glossary_offers", ())
    if offers:
        # Offered, never written: the show's glossary is the producer's file.
        cli.say(
            f"{result.episode_id}: corrected names and terms not in the glossary: {', '.join(offers)} "
            "(add them to [whisper] glossary in show.toml so the recogniser spells them right next time)"
        )
    return Reply(result.to_json())


@command("run", hidden=True)
def run_cmd(cli: Cli, episode: EpisodeArg) -> Reply:
    """Run the whole pipeline for EPISODE: master, transcribe, chapters, notes, tag, report, publish (the feed last).

    `produce EPISODE` is this command.
    """
    return run_stages(cli, episode, None)


@command("master")
def master_cmd(
    cli: Cli,
    episode: EpisodeArg,
    target_lufs: Annotated[float | None, typer.Option(help="Integrated loudness target, LUFS.")] = None,
    true_peak: Annotated[float | None, typer.Option(help="True-peak ceiling, dBTP.")] = None,
) -> Reply:
    """Master EPISODE alone: join, trim, normalize, stitch intro/disclaimer/outro, export MP3 and master.json."""
    return run_stages(cli, episode, "master", {"audio.target_lufs": target_lufs, "audio.true_peak_db": true_peak})


@command("transcribe")
def transcribe_cmd(
    cli: Cli,
    target: Annotated[
        str, typer.Argument(metavar="FILE|EPISODE", help="An audio file (any format ffmpeg reads) or an episode id.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for a file's transcripts (default: beside the file).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="faster-whisper (default) or openai-whisper.")] = None,
    model: Annotated[str | None, typer.Option(help="Bundled name (tiny.en, base), Whisper name or path.")] = None,
    compute_type: Annotated[str | None, typer.Option(help="faster-whisper: float32, int8, ...")] = None,
    beam_size: Annotated[int | None, typer.Option(help="Beam size (1-10).")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language code, e.g. en.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: one per physical core).")] = None,
    vad: Annotated[
        bool | None, typer.Option("--vad/--no-vad", help="Transcribe only what VAD finds is speech.")
    ] = None,
    glossary: Annotated[
        list[str] | None, typer.Option("--glossary", "-g", help="A name or term to spell right (repeatable).")
    ] = None,
    speaker: Annotated[str | None, typer.Option(help="Speaker name for VTT voice tags and JSON (file only).")] = None,
) -> Reply:
    """Transcribe an audio FILE (txt, srt, vtt, json, html beside it or in --out), or an EPISODE (after its master)."""
    from .. import transcript
    from ..transcript import weights

    overrides: dict[str, Any] = {
        "engine": engine, "model": model, "compute_type": compute_type, "beam_size": beam_size,
        "language": language, "threads": threads, "vad": vad,
    }  # fmt: skip
    path = Path(target)
    if not path.is_file() and "/" not in target and not path.suffix:
        if glossary:
            overrides["glossary"] = (*cli.settings().show.whisper.glossary, *glossary)
        return run_stages(cli, target, "transcribe", {f"whisper.{k}": v for k, v in overrides.items()})
    settings = whisper_settings(cli.configs, overrides)
    with cli.progress() as progress:
        result = transcript.transcribe(
            path, settings, out or path.parent, stem=path.stem, speaker=speaker, glossary=glossary or (),
            cache_dir=weights.default_cache_dir(), progress=progress,
        )  # fmt: skip
    cli.say(result.describe())
    for p in result.files.values():
        cli.say(f"  {p}")
    return Reply(result.summary())


@command("chapters")
def chapters_cmd(
    cli: Cli,
    episode: EpisodeArg,
    check: Annotated[
        bool, typer.Option("--check", help="Also check that the tagged MP3 and chapters.json agree (within 1 ms).")
    ] = False,
    notes: Annotated[
        Path | None,
        typer.Option(
            "--notes", help="With --check: notes whose (HH:MM:SS) lines must agree (default: the built notes)."
        ),
    ] = None,
) -> Reply:
    """Build EPISODE's chapters (config + intro/disclaimer/outro) into chapters.json; --check compares the MP3."""
    if not check:
        return run_stages(cli, episode, "chapters")
    from ..pipeline import check_episode_chapters, run_episode

    settings = cli.settings()
    with cli.progress() as progress:
        run_episode(
            settings, episode, upto="chapters", force=cli.force, progress=progress,
            on_stage=partial(cli.on_stage, episode),
        )  # fmt: skip
    result = check_episode_chapters(settings, episode, notes)
    cli.say(f"{episode}: {result.describe()}")
    return Reply({"episode": episode, **result.summary()})


@command("notes")
def notes_cmd(cli: Cli, episode: EpisodeArg) -> Reply:
    """Write EPISODE's show notes (show-notes.md and .html) from its config, chapters and transcript."""
    return run_stages(cli, episode, "notes")


@command("tag")
def tag_cmd(
    cli: Cli,
    episode: EpisodeArg,
    id3_version: Annotated[int | None, typer.Option("--id3-version", help="ID3v2 version: 3 (default) or 4.")] = None,
) -> Reply:
    """Tag EPISODE's MP3: ID3 text, cover art (checked), chapters (CHAP + CTOC, checked against chapters.json)."""
    return run_stages(cli, episode, "tag", {"tags.id3_version": id3_version})


@command("report")
def report_cmd(
    cli: Cli,
    episode: EpisodeArg,
    open_page: Annotated[bool, typer.Option("--open", help="Open report.html in the web browser.")] = False,
) -> Reply:
    """Write EPISODE's production report (build/<id>/report.html) and print its summary.

    Loudness before and after, per recording and speaker, the limiter's work, and the words to check in the
    transcript. Earlier stages run first when out of date.
    """
    from rich.table import Table
    from rich.text import Text

    from ..pipeline import run_episode

    settings = cli.settings()
    with cli.progress() as progress:
        run = run_episode(
            settings, episode, upto="report", force=cli.force, progress=progress,
            on_stage=partial(cli.on_stage, episode),
        )  # fmt: skip
    rep = run.artefacts["report"]
    if cli.for_people:
        # Text objects, not markup: a recording or speaker named "[draft]" is printed as it is.
        table = Table(title=Text(f"{rep.episode_id}: production report"), show_header=False)
        for label, value in rep.rows():
            table.add_row(Text(label, style="red" if label == "PROBLEM" else ""), Text(value))
        cli.out.print(table)
        for w in rep.low_confidence[:10]:
            cli.say(f"  check {w.clock} “{w.text}” (p={w.probability})")
        for m in rep.missing_terms:
            cli.say(f"  check {m.clock} “{m.text}”: {m.note}")
        cli.say(rep.describe())
    if open_page:
        import webbrowser

        webbrowser.open(rep.html.resolve().as_uri())
    return Reply(rep.to_json())
