"""The ``produce`` command: a thin Typer + Rich layer over the library.

Each command is one call into the package. This is the only module that prints errors and picks exit codes
(beets ``ui.main()``, fastapi-cli ``_run()``): one readable line per error, the traceback only with ``--verbose``,
exit 130 quietly on Ctrl-C.

``produce episode-258`` (an episode id as the first argument) runs the whole pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from . import __version__
from .config import Settings, WhisperSettings, load_settings
from .errors import ArchiveError, ConfigError, KeylimeError
from .progress import ProgressFn

#: Exit codes (documented in the README): 0 success; 1 any other error; 2 bad config or usage; 3 ffmpeg;
#: 4 audio; 5 transcript or notes; 6 tags; 7 storage; 8 feed; 9 publishing; 130 interrupted.
EXIT_OK = 0
EXIT_INTERRUPTED = 130

err_console = Console(stderr=True)
out_console = Console()
log = logging.getLogger("keylime_prod")


class _EpisodeFirstGroup(TyperGroup):
    """Route ``produce EPISODE ...`` to the hidden ``run`` command, so an episode id works as a command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for i, a in enumerate(args):
            if a.startswith("-"):
                if a in ("--help", "--version"):
                    break
                continue
            if a not in self.commands:
                args = [*args[:i], "run", *args[i:]]
            break
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_EpisodeFirstGroup,
    help="Produce a podcast episode end to end: `produce EPISODE` masters, transcribes, tags and publishes it.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ------------------------------------------------------------------------------------------------ shared options

ConfigsOpt = Annotated[
    Path | None,
    typer.Option("--configs", help="Folder with show.toml and episodes/ (env KEYLIME_CONFIGS; default ./configs)."),
]
BuildDirOpt = Annotated[Path | None, typer.Option("--build-dir", help="Root of the build folders (default ./build).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and tracebacks on errors.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors; no progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo stages even when their cached result is up to date.")]


class _State:
    verbose = False
    quiet = False


def _setup_logging(verbose: bool, quiet: bool) -> None:
    _State.verbose, _State.quiet = verbose, quiet
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.INFO)
    root = logging.getLogger("keylime_prod")
    root.handlers.clear()
    handler = RichHandler(console=err_console, show_path=verbose, rich_tracebacks=True, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    if verbose:
        # boto/urllib3 debug logs can carry signed headers; keep third-party loggers at INFO even in --verbose.
        for name in ("botocore", "boto3", "urllib3", "s3transfer"):
            logging.getLogger(name).setLevel(logging.INFO)


def _settings(configs: Path | None, build_dir: Path | None, **overrides: Any) -> Settings:
    configs = configs or Path(os.environ.get("KEYLIME_CONFIGS", "configs"))
    settings = load_settings(configs, build_dir, **overrides)
    # KEYLIME_S3_ENDPOINT_URL / _BUCKET / _PREFIX and KEYLIME_PUBLIC_BASE_URL win over show.toml (CI sets them from
    # secrets). Resolved here, never inside a stage; credentials stay with boto3 (AWS_* variables or a profile).
    storage = settings.show.storage.with_env(os.environ)
    if storage is not settings.show.storage:
        settings = settings.model_copy(update={"show": settings.show.model_copy(update={"storage": storage})})
    return settings


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A Rich progress display whose tasks are created on first use by description."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(description: str, done: float, total: float) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done, total=total)

        yield update


def _run(fn: Callable[[], Any]) -> None:
    """Call ``fn``; turn every error into one line on stderr and an exit code."""
    try:
        fn()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except KeylimeError as e:
        if _State.verbose:
            err_console.print_exception()
        err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except OSError as e:
        if _State.verbose:
            err_console.print_exception()
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        err_console.print(f"[red]error:[/red] {where}{e.strerror or e}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _run_stages(
    episode: str,
    upto: str | None,
    *,
    configs: Path | None,
    build_dir: Path | None,
    force: bool,
    quiet: bool,
    as_json: bool,
    overrides: dict[str, Any] | None = None,
) -> None:
    from .pipeline import run_episode

    settings = _settings(configs, build_dir, **(overrides or {}))

    def on_stage(name: str, what: str) -> None:
        if not quiet and not as_json and what != "start":
            err_console.print(f"[green]✓[/green] {name}" + (" (cached)" if what == "cached" else ""))

    with _progress(not quiet and not as_json) as progress:
        result = run_episode(settings, episode, upto=upto, force=force, progress=progress, on_stage=on_stage)
    summary: dict[str, Any] = {
        "episode": result.episode_id,
        "build_dir": str(result.build_dir),
        "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "cached": s.cached} for s in result.stages],
    }
    master = result.artefacts.get("master")
    if master is not None:
        summary["master"] = {
            "mp3": str(master.mp3),
            "duration": round(master.duration, 3),
            "integrated_lufs": master.output_loudness.integrated_lufs,
            "true_peak_dbtp": master.output_loudness.true_peak_dbtp,
            "method": master.method,
        }
    marks = result.artefacts.get("chapters")
    if marks is not None:
        summary["chapters"] = {"json": str(marks.json_path), "count": len(marks.marks)}
    spoken = result.artefacts.get("transcribe")
    if spoken is not None:
        summary["transcript"] = {
            "engine": spoken.engine,
            "model": spoken.model,
            "segments": len(spoken.segments),
            "files": {k: str(v) for k, v in spoken.files.items()},
        }
    shownotes = result.artefacts.get("notes")
    if shownotes is not None:
        summary["notes"] = {"markdown": str(shownotes.markdown), "html": str(shownotes.html)}
    tagged = result.artefacts.get("tag")
    if tagged is not None:
        summary["tag"] = {
            "mp3": str(tagged.mp3),
            "id3_version": tagged.id3_version,
            "frames": len(tagged.frames),
            "chapters": tagged.chapters,
            "size_bytes": tagged.size_bytes,
            "sha256": tagged.sha256,
        }
    if result.artefacts.get("publish") is not None:
        summary["publish"] = result.artefacts["publish"].to_json()
    if as_json:
        _emit_json(summary)
    elif not quiet and master is not None:
        out_console.print(
            f"{result.episode_id}: {master.mp3} ({master.duration / 60:.1f} min, "
            f"{master.output_loudness.integrated_lufs:.1f} LUFS, {master.output_loudness.true_peak_dbtp:.1f} dBTP, "
            f"{master.method})",
            highlight=False,
        )
    if tagged is not None and not as_json and not quiet:
        out_console.print(
            f"{result.episode_id}: tagged ID3v2.{tagged.id3_version}, {len(tagged.frames)} frames, "
            f"{tagged.chapters} chapters, {tagged.size_bytes:,} bytes",
            highlight=False,
        )
    published = result.artefacts.get("publish")
    if published is not None and not as_json and not quiet:
        _print_published(published)


# ------------------------------------------------------------------------------------------------------ commands


@app.command("run", hidden=True)
def run_cmd(
    episode: Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")],
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline for EPISODE (what `produce EPISODE` does)."""
    _setup_logging(verbose, quiet or as_json)
    _run(
        lambda: _run_stages(
            episode, None, configs=configs, build_dir=build_dir, force=force, quiet=quiet, as_json=as_json
        )
    )


@app.command("master")
def master_cmd(
    episode: Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")],
    target_lufs: Annotated[float | None, typer.Option(help="Integrated loudness target, LUFS.")] = None,
    true_peak: Annotated[float | None, typer.Option(help="True-peak ceiling, dBTP.")] = None,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Master EPISODE alone: join, trim, normalize, stitch intro/disclaimer/outro, export MP3 and master.json."""
    _setup_logging(verbose, quiet or as_json)
    overrides = {"audio.target_lufs": target_lufs, "audio.true_peak_db": true_peak}
    _run(
        lambda: _run_stages(
            episode,
            "master",
            configs=configs,
            build_dir=build_dir,
            force=force,
            quiet=quiet,
            as_json=as_json,
            overrides=overrides,
        )
    )


@app.command("chapters")
def chapters_cmd(
    episode: Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")],
    check: Annotated[
        bool, typer.Option("--check", help="Also check that the tagged MP3 and chapters.json agree (within 1 ms).")
    ] = False,
    notes: Annotated[
        Path | None,
        typer.Option(
            "--notes", help="With --check: notes whose (HH:MM:SS) lines must agree (default: the built notes)."
        ),
    ] = None,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Build EPISODE's chapters (config + intro/disclaimer/outro) into chapters.json; --check compares the MP3."""
    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        _run_stages(
            episode, "chapters", configs=configs, build_dir=build_dir, force=force, quiet=quiet or check,
            as_json=as_json and not check,
        )  # fmt: skip
        if check:
            from .artefacts import Tagged
            from .chapters import check_chapters

            layout = _settings(configs, build_dir).layout(episode)
            mp3 = Tagged.load(layout.tagged_json).mp3
            use_notes = notes or (layout.notes_md if layout.notes_md.is_file() else None)
            result = check_chapters(mp3, layout.chapters_json, notes=use_notes)
            if as_json:
                _emit_json({"episode": episode, "mp3": str(mp3), **result.__dict__})
            elif not quiet:
                out_console.print(
                    f"{episode}: {result.count} chapters agree in {mp3.name} and {layout.chapters_json.name}"
                    f"{' and the notes' if result.notes_checked else ''} (max difference {result.max_diff_ms} ms, "
                    f"audio {result.duration:.3f} s)",
                    highlight=False,
                )

    _run(go)


@app.command("tag")
def tag_cmd(
    episode: Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")],
    id3_version: Annotated[int | None, typer.Option("--id3-version", help="ID3v2 version: 3 (default) or 4.")] = None,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag EPISODE's MP3: ID3 text, cover art (checked), chapters (CHAP + CTOC, checked against chapters.json)."""
    _setup_logging(verbose, quiet or as_json)
    _run(
        lambda: _run_stages(
            episode,
            "tag",
            configs=configs,
            build_dir=build_dir,
            force=force,
            quiet=quiet,
            as_json=as_json,
            overrides={"tags.id3_version": id3_version},
        )
    )


def _whisper_settings(configs: Path | None, overrides: dict[str, Any]) -> WhisperSettings:
    """[whisper] from show.toml when there is one (else the defaults), with non-None CLI values laid on top."""
    from pydantic import ValidationError

    from .config import load_show

    folder = configs or Path(os.environ.get("KEYLIME_CONFIGS", "configs"))
    show_toml = folder / "show.toml"
    base = load_show(show_toml).whisper if (configs is not None or show_toml.is_file()) else WhisperSettings()
    data = {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return WhisperSettings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"option for whisper.{field}: {first['msg']}", hint="see `produce transcribe --help`"
        ) from None


@app.command("transcribe")
def transcribe_cmd(
    target: Annotated[str, typer.Argument(help="An audio file (any format ffmpeg reads) or an episode id.")],
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
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Transcribe an audio FILE (txt, srt, vtt, json, html beside it or in --out), or an EPISODE (after its master)."""
    _setup_logging(verbose, quiet or as_json)
    overrides: dict[str, Any] = {
        "engine": engine, "model": model, "compute_type": compute_type, "beam_size": beam_size,
        "language": language, "threads": threads, "vad": vad,
    }  # fmt: skip

    def go() -> None:
        from . import models, transcript

        path = Path(target)
        if not path.is_file() and "/" not in target and not path.suffix:
            if glossary:
                overrides["glossary"] = (*_settings(configs, build_dir).show.whisper.glossary, *glossary)
            _run_stages(
                target, "transcribe", configs=configs, build_dir=build_dir, force=force, quiet=quiet,
                as_json=as_json, overrides={f"whisper.{k}": v for k, v in overrides.items()},
            )  # fmt: skip
            return
        settings = _whisper_settings(configs, overrides)
        with _progress(not quiet and not as_json) as progress:
            result = transcript.transcribe(
                path, settings, out or path.parent, stem=path.stem, speaker=speaker, glossary=glossary or (),
                cache_dir=models.default_cache_dir(), progress=progress,
            )  # fmt: skip
        if as_json:
            _emit_json(
                {
                    "source": result.source, "engine": result.engine, "model": result.model,
                    "segments": len(result.segments), "audio_seconds": result.audio_seconds,
                    "elapsed_seconds": result.elapsed_seconds, "files": {k: str(v) for k, v in result.files.items()},
                }
            )  # fmt: skip
        elif not quiet:
            out_console.print(
                f"{path.name}: {len(result.segments)} segments, {result.audio_seconds:.0f} s in "
                f"{result.elapsed_seconds:.1f} s ({result.engine} {result.model})",
                highlight=False,
            )
            for p in result.files.values():
                out_console.print(f"  {p}", highlight=False)

    _run(go)


@app.command("notes")
def notes_cmd(
    episode: Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")],
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write EPISODE's show notes (show-notes.md and .html) from its config, chapters and transcript."""
    _setup_logging(verbose, quiet or as_json)
    # Earlier stages run too when out of date (cached ones are only loaded), so the notes are never stale.
    _run(
        lambda: _run_stages(
            episode, "notes", configs=configs, build_dir=build_dir, force=force, quiet=quiet, as_json=as_json
        )
    )


models_app = typer.Typer(
    help="Whisper models: list the bundled ones, export one for openai-whisper.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@models_app.command("export-openai")
def models_export_cmd(
    model: Annotated[
        str, typer.Argument(help="Bundled name (tiny.en, base) or a CTranslate2 model folder.")
    ] = "tiny.en",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also copy the checkpoint here (file or folder).")
    ] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert a CTranslate2 Whisper model into an openai-whisper checkpoint (cached; same weights, bit for bit)."""
    _setup_logging(verbose, quiet)

    def go() -> None:
        from . import models

        path = models.export_openai(model, cache_dir=models.default_cache_dir(), dest=out)
        out_console.print(str(path), highlight=False)

    _run(go)


@models_app.command("list")
def models_list_cmd(verbose: VerboseOpt = False) -> None:
    """List the bundled models, whether their packages are installed, and the model cache folder."""
    _setup_logging(verbose, False)

    def go() -> None:
        from . import models

        for name, installed, hint in models.bundled_status():
            mark = "[green]✓[/green]" if installed else "[yellow]-[/yellow]"
            out_console.print(f"{mark} {name}" + ("" if installed else f"  ({hint})"), highlight=False)
        out_console.print(f"cache: {models.default_cache_dir()}", highlight=False)

    _run(go)


def _print_published(res: Any) -> None:
    """One line per file and one for the feed (``produce publish``)."""
    verb = {"uploaded": "[green]↑[/green]", "present": "=", "upload": "[yellow]would upload[/yellow]", "keep": "="}
    for e in res.episodes:
        state = "live" if e.live else ("scheduled for " + e.publish_date.isoformat() if e.scheduled else "not live")
        if res.dry_run:
            state = "dry run"
        out_console.print(f"[bold]{e.episode_id}[/bold] ({state}) -> {res.target}", highlight=False)
        for f in e.files:
            how = f" verified by {f.verified_by}" if f.verified_by else ""
            out_console.print(f"  {verb.get(f.action, f.action)} {f.key} ({f.size:,} bytes){how}", highlight=False)
    feed = ("would update" if res.dry_run else "updated") if res.feed_updated else "unchanged"
    out_console.print(f"feed {feed}: {res.feed_url} ({res.feed_items} items)", highlight=False)


@app.command("publish")
def publish_cmd(
    episode: Annotated[str | None, typer.Argument(help="Episode id: publish what its build folder holds.")] = None,
    due: Annotated[
        bool,
        typer.Option(
            "--due", help="Publish every episode whose date has come and is not live (builds what is missing)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; build, upload and write nothing.")
    ] = False,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Upload EPISODE's files, verify each, write its manifest, then update the feed last (or --due: every due one).

    With no endpoint configured it publishes into public/; KEYLIME_S3_ENDPOINT_URL, KEYLIME_S3_BUCKET,
    KEYLIME_S3_PREFIX and KEYLIME_PUBLIC_BASE_URL override show.toml; keys come from AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY or an AWS profile.
    """
    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        from .errors import ConfigError
        from .release import publish_due, publish_episodes

        if (episode is None) == (not due):
            raise ConfigError(
                "give an EPISODE or --due (not both)", hint="produce publish episode-258, or produce publish --due"
            )
        settings = _settings(configs, build_dir)
        if episode is not None:
            with _progress(not quiet and not as_json) as progress:
                res = publish_episodes(settings, [episode], dry_run=dry_run, progress=progress)
            if as_json:
                _emit_json(res.to_json())
            elif not quiet:
                _print_published(res)
            return

        def on_stage(ep: str, name: str, what: str) -> None:
            if not quiet and not as_json and what != "start":
                err_console.print(f"[green]✓[/green] {ep}: {name}" + (" (cached)" if what == "cached" else ""))

        with _progress(not quiet and not as_json) as progress:
            result = publish_due(settings, dry_run=dry_run, progress=progress, on_stage=on_stage)
        if as_json:
            _emit_json(result.to_json())
        elif not quiet:
            if not result.due:
                out_console.print("nothing is due: every episode whose date has come is live", highlight=False)
            for d in result.due:
                out_console.print(f"due: {d.episode_id} ({d.publish_date.date()}, {d.reason})", highlight=False)
            for ep_id in result.unbuilt:
                out_console.print(f"  {ep_id} would be built first", highlight=False)
            if result.published is not None:
                _print_published(result.published)
        if result.failures:
            for f in result.failures:
                err_console.print(f"[red]error:[/red] {f.episode_id}: {f.error}", highlight=False, soft_wrap=True)
            raise typer.Exit(max(f.error.exit_code for f in result.failures))

    _run(go)


@app.command("check")
def check_cmd(
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the configs, every episode, the assets they name, and that ffmpeg is present and works."""
    from .check import check_all

    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        report = check_all(configs or Path(os.environ.get("KEYLIME_CONFIGS", "configs")))
        if as_json:
            _emit_json(report.to_json())
        elif not quiet:
            for line in report.lines:
                out_console.print(f"[green]✓[/green] {line}", highlight=False)
        if report.errors:
            for e in report.errors:
                err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(max(e.exit_code for e in report.errors))

    _run(go)


# ------------------------------------------------------------------------------------------ archive (issue 12)


@app.command("import")
def import_cmd(
    feed: Annotated[str, typer.Argument(help="The old feed: an http(s) URL or a file.")],
    media: Annotated[
        Path | None,
        typer.Option("--media", envvar="KEYLIME_MEDIA", help="Folder for the media, not in git (default ./media)."),
    ] = None,
    no_fetch: Annotated[
        bool, typer.Option("--no-fetch", help="Leave the media at its URL; the batch fetches it.")
    ] = False,
    remaster: Annotated[
        bool, typer.Option("--remaster", help="New configs say remaster = true (default: keep the old MP3).")
    ] = False,
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import an existing show's feed: a config per item (its guid kept forever) and its media, resumably."""
    from .importer import import_feed

    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        folder = configs or Path(os.environ.get("KEYLIME_CONFIGS", "configs"))
        with _progress(not quiet and not as_json) as progress:
            res = import_feed(
                feed, folder, media_dir=media or Path("media"), fetch=not no_fetch, remaster=remaster,
                **({"progress": progress} if progress else {}),
            )  # fmt: skip
        if as_json:
            _emit_json(res.to_json())
        elif not quiet:
            for e in res.episodes:
                out_console.print(f"{e.episode_id}: config {e.config}, media {e.media}", highlight=False)
        for p in res.problems:
            err_console.print(f"[red]error:[/red] {p}", highlight=False, soft_wrap=True)
        if res.problems:
            raise typer.Exit(ArchiveError.exit_code)

    _run(go)


def _version_callback(value: bool) -> None:
    if value:
        out_console.print(f"keylime-prod {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Produce a podcast episode end to end: `produce EPISODE` masters, transcribes, tags and publishes it."""


def main() -> None:
    """Console-script entry point."""
    app(prog_name="produce")
