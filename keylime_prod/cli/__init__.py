"""The ``produce`` command: a thin Typer + Rich layer over the library.

Each command is one call into the package. This is the only module that prints errors and picks exit codes
(beets ``ui.main()``, fastapi-cli ``_run()``): one readable line per error, the traceback only with ``--verbose``,
exit 130 quietly on Ctrl-C.

``produce episode-258`` (an episode id as the first argument) runs the whole pipeline.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from .. import __version__
from ..config import Settings, StorageSettings, load_settings, storage_sources, whisper_settings
from ..errors import ArchiveError, ConfigError, KeylimeError, redact
from ..progress import ProgressFn

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
# Declared once, used by every command (fastapi-cli's shape). Options default to None so config.load_settings lays
# only what was given on top of show.toml; an option that mirrors an environment variable says so with ``envvar=``.

EpisodeArg = Annotated[str, typer.Argument(help="Episode id, e.g. episode-258.")]
ConfigsOpt = Annotated[
    Path | None,
    typer.Option(
        "--configs", envvar="KEYLIME_CONFIGS", help="Folder with show.toml and episodes/ (default ./configs)."
    ),
]
BuildDirOpt = Annotated[Path | None, typer.Option("--build-dir", help="Root of the build folders (default ./build).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and tracebacks on errors.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors; no progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo stages even when their cached result is up to date.")]
# Storage: CI sets these from secrets. Credentials are never options: only the AWS variables or a profile.
_ENV = StorageSettings.ENV
S3EndpointOpt = Annotated[
    str | None, typer.Option("--s3-endpoint-url", envvar=_ENV["endpoint_url"], help="S3-compatible endpoint URL.")
]
S3BucketOpt = Annotated[str | None, typer.Option("--s3-bucket", envvar=_ENV["bucket"], help="Bucket name.")]
S3PrefixOpt = Annotated[
    str | None, typer.Option("--s3-prefix", envvar=_ENV["prefix"], help="Key prefix in the bucket.")
]
PublicUrlOpt = Annotated[
    str | None, typer.Option("--public-base-url", envvar=_ENV["public_base_url"], help="Public URL of the prefix.")
]


class _State:
    verbose = False
    quiet = False
    as_json = False
    storage: dict[str, str | None] = {}  # noqa: RUF012  (set once per process by the callback)


def _setup_logging(verbose: bool, quiet: bool, as_json: bool = False) -> None:
    _State.verbose, _State.quiet, _State.as_json = verbose, quiet or as_json, as_json
    level = logging.DEBUG if verbose else (logging.ERROR if quiet or as_json else logging.INFO)
    root = logging.getLogger("keylime_prod")
    root.handlers.clear()
    handler = RichHandler(console=err_console, show_path=verbose, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_Redact())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    if verbose:
        # boto/urllib3 debug logs can carry signed headers; keep third-party loggers at INFO even in --verbose.
        for name in ("botocore", "boto3", "urllib3", "s3transfer"):
            logging.getLogger(name).setLevel(logging.INFO)


class _Redact(logging.Filter):
    """Credentials in URLs never reach the terminal, whatever logged them (errors.redact)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = record.exc_text = None
        record.msg, record.args = redact(text), ()
        return True


def _settings(configs: Path | None, build_dir: Path | None, **overrides: Any) -> Settings:
    # Storage options / KEYLIME_S3_* variables (from the callback) win over show.toml; config.py does the merging.
    return load_settings(configs, build_dir, sources=storage_sources(), **_State.storage, **overrides)


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
    """Call ``fn``; turn every error into one line on stderr (and, with ``--json``, one JSON document on stdout) and
    an exit code. Credentials in URLs are redacted from everything printed, tracebacks included."""
    try:
        fn()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (KeylimeError, OSError) as e:
        if isinstance(e, KeylimeError):
            line, code = str(e), e.exit_code
        else:
            line, code = (f"{e.filename}: " if getattr(e, "filename", None) else "") + str(e.strerror or e), 1
        line = redact(line)
        if _State.verbose:
            err_console.print(redact("".join(traceback.format_exception(e)).rstrip()), highlight=False, markup=False)
        err_console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
        if _State.as_json:
            _emit_json({"ok": False, "error": line, "exit_code": code, "kind": type(e).__name__})
        raise typer.Exit(code) from None


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
    """Run the pipeline up to ``upto`` and print what each artefact says about itself."""
    from ..pipeline import run_episode

    settings = _settings(configs, build_dir, **(overrides or {}))

    def on_stage(name: str, what: str) -> None:
        if not quiet and not as_json and what != "start":
            err_console.print(f"[green]✓[/green] {name}" + (" (cached)" if what == "cached" else ""))

    with _progress(not quiet and not as_json) as progress:
        result = run_episode(settings, episode, upto=upto, force=force, progress=progress, on_stage=on_stage)
    if as_json:
        _emit_json(result.to_json())
        return
    if quiet:
        return
    art = result.artefacts
    if art.get("master") is not None:
        _say(art["master"].describe())
    if art.get("tag") is not None:
        _say(f"{result.episode_id}: {art['tag'].describe()}")
    if art.get("report") is not None:
        _say(art["report"].describe())
    if art.get("publish") is not None:
        _print_published(art["publish"])
    offers = getattr(art.get("transcribe"), "glossary_offers", ())
    if offers:
        # Offered, never written: the show's glossary is the producer's file.
        _say(
            f"{result.episode_id}: corrected names and terms not in the glossary: {', '.join(offers)} "
            "(add them to [whisper] glossary in show.toml so the recogniser spells them right next time)"
        )


def _stage_cmd(
    upto: str | None,
    episode: str,
    configs: Path | None,
    build_dir: Path | None,
    force: bool,
    verbose: bool,
    quiet: bool,
    as_json: bool,
    overrides: dict[str, Any] | None = None,
) -> None:
    """What a command that runs the pipeline up to one stage does: logging, then the run, errors printed once."""
    _setup_logging(verbose, quiet, as_json)
    _run(
        lambda: _run_stages(
            episode, upto, configs=configs, build_dir=build_dir, force=force, quiet=quiet, as_json=as_json,
            overrides=overrides,
        )
    )  # fmt: skip


def _say(line: str) -> None:
    out_console.print(line, highlight=False)


# ------------------------------------------------------------------------------------------------------ commands


@app.command("run", hidden=True)
def run_cmd(
    episode: EpisodeArg,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline for EPISODE (what `produce EPISODE` does)."""
    _stage_cmd(None, episode, configs, build_dir, force, verbose, quiet, as_json)


@app.command("master")
def master_cmd(
    episode: EpisodeArg,
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
    overrides = {"audio.target_lufs": target_lufs, "audio.true_peak_db": true_peak}
    _stage_cmd("master", episode, configs, build_dir, force, verbose, quiet, as_json, overrides)


@app.command("chapters")
def chapters_cmd(
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
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Build EPISODE's chapters (config + intro/disclaimer/outro) into chapters.json; --check compares the MP3."""
    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        _run_stages(
            episode, "chapters", configs=configs, build_dir=build_dir, force=force, quiet=quiet or check,
            as_json=as_json and not check,
        )  # fmt: skip
        if check:
            from ..pipeline import check_episode_chapters

            result = check_episode_chapters(_settings(configs, build_dir), episode, notes)
            if as_json:
                _emit_json({"episode": episode, **result.summary()})
            elif not quiet:
                _say(f"{episode}: {result.describe()}")

    _run(go)


@app.command("tag")
def tag_cmd(
    episode: EpisodeArg,
    id3_version: Annotated[int | None, typer.Option("--id3-version", help="ID3v2 version: 3 (default) or 4.")] = None,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag EPISODE's MP3: ID3 text, cover art (checked), chapters (CHAP + CTOC, checked against chapters.json)."""
    _stage_cmd("tag", episode, configs, build_dir, force, verbose, quiet, as_json, {"tags.id3_version": id3_version})


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
    _setup_logging(verbose, quiet, as_json)
    overrides: dict[str, Any] = {
        "engine": engine, "model": model, "compute_type": compute_type, "beam_size": beam_size,
        "language": language, "threads": threads, "vad": vad,
    }  # fmt: skip

    def go() -> None:
        from .. import transcript
        from ..transcript import weights

        path = Path(target)
        if not path.is_file() and "/" not in target and not path.suffix:
            if glossary:
                overrides["glossary"] = (*_settings(configs, build_dir).show.whisper.glossary, *glossary)
            _run_stages(
                target, "transcribe", configs=configs, build_dir=build_dir, force=force, quiet=quiet,
                as_json=as_json, overrides={f"whisper.{k}": v for k, v in overrides.items()},
            )  # fmt: skip
            return
        settings = whisper_settings(configs, overrides)
        with _progress(not quiet and not as_json) as progress:
            result = transcript.transcribe(
                path, settings, out or path.parent, stem=path.stem, speaker=speaker, glossary=glossary or (),
                cache_dir=weights.default_cache_dir(), progress=progress,
            )  # fmt: skip
        if as_json:
            _emit_json(result.summary())
        elif not quiet:
            _say(result.describe())
            for p in result.files.values():
                _say(f"  {p}")

    _run(go)


@app.command("notes")
def notes_cmd(
    episode: EpisodeArg,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write EPISODE's show notes (show-notes.md and .html) from its config, chapters and transcript."""
    # Earlier stages run too when out of date (cached ones are only loaded), so the notes are never stale.
    _stage_cmd("notes", episode, configs, build_dir, force, verbose, quiet, as_json)


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
        from ..transcript import weights

        path = weights.export_openai(model, cache_dir=weights.default_cache_dir(), dest=out)
        out_console.print(str(path), highlight=False)

    _run(go)


@models_app.command("list")
def models_list_cmd(verbose: VerboseOpt = False) -> None:
    """List the bundled models, whether their packages are installed, and the model cache folder."""
    _setup_logging(verbose, False)

    def go() -> None:
        from ..transcript import weights

        for name, installed, hint in weights.bundled_status():
            mark = "[green]✓[/green]" if installed else "[yellow]-[/yellow]"
            out_console.print(f"{mark} {name}" + ("" if installed else f"  ({hint})"), highlight=False)
        out_console.print(f"cache: {weights.default_cache_dir()}", highlight=False)

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
    withdraw: Annotated[
        bool,
        typer.Option("--withdraw", help="Let EPISODE leave the live feed if it is now dated in the future (logged)."),
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
    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        from ..pipeline.release import publish_due, publish_episodes

        if (episode is None) == (not due):
            raise ConfigError(
                "give an EPISODE or --due (not both)", hint="produce publish episode-258, or produce publish --due"
            )
        settings = _settings(configs, build_dir)
        if episode is not None:
            with _progress(not quiet and not as_json) as progress:
                res = publish_episodes(settings, [episode], dry_run=dry_run, progress=progress, withdraw=withdraw)
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


@app.command("report")
def report_cmd(
    episode: EpisodeArg,
    open_page: Annotated[bool, typer.Option("--open", help="Open report.html in the web browser.")] = False,
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write EPISODE's production report (build/<id>/report.html) and print its summary.

    Loudness before and after, per recording and speaker, the limiter's work, and the words to check in the
    transcript. Earlier stages run first when out of date.
    """
    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        from rich.table import Table

        from ..pipeline import run_episode

        settings = _settings(configs, build_dir)
        with _progress(not quiet and not as_json) as progress:
            rep = run_episode(settings, episode, upto="report", force=force, progress=progress).artefacts["report"]
        if as_json:
            _emit_json(rep.to_json())
        elif not quiet:
            table = Table(title=f"{rep.episode_id}: production report", show_header=False)
            for label, value in rep.rows():
                table.add_row(f"[red]{label}[/red]" if label == "PROBLEM" else label, value)
            out_console.print(table)
            for w in rep.low_confidence[:10]:
                _say(f"  check {w.clock} {w.text!r} (p={w.probability})")
            for m in rep.missing_terms:
                _say(f"  check {m.clock} {m.text!r}: {m.note}")
            _say(rep.describe())
        if open_page:
            import webbrowser

            webbrowser.open(rep.html.resolve().as_uri())

    _run(go)


@app.command("verify")
def verify_cmd(
    episodes: Annotated[list[str] | None, typer.Argument(help="Episode id(s) to check (or --all).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Check every item of the feed.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the local publish folder (public/) instead of the public URLs.")
    ] = False,
    feed_url: Annotated[
        str | None, typer.Option("--feed-url", help="Check this feed (default: show.feed_url).")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state", help="Where each episode's guid is remembered (default: <build-dir>/verify-state.json)."
        ),
    ] = None,
    audio: Annotated[
        str, typer.Option("--audio", help="How many MP3s to download and measure, newest first: a number or 'all'.")
    ] = "1",
    configs: ConfigsOpt = None,
    build_dir: BuildDirOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the live feed as a podcast app would: tags, byte ranges, media types, artwork, guids, loudness, ID3.

    One line per problem; exit 1 when there is any error (warnings do not fail). See docs/release.md.
    """
    _setup_logging(verbose, quiet or as_json)

    def go() -> None:
        from ..catalogue.release_check import verify_show
        from ..errors import ConfigError

        if bool(episodes) == every:
            raise ConfigError("give EPISODE(s) or --all (not both)", hint="produce verify episode-258, or --all")
        if audio != "all" and not audio.isdigit():
            raise ConfigError(f"--audio {audio!r}: give a number or 'all'")
        settings = _settings(configs, build_dir)
        res = verify_show(
            settings, None if every else episodes, offline=offline, feed_url=feed_url, state=state,
            audio="all" if audio == "all" else int(audio),
        )  # fmt: skip
        if as_json:
            _emit_json(res.to_json())
        else:
            for p in res.problems:
                colour = "red" if p.severity == "error" else "yellow"
                err_console.print(
                    f"[{colour}]{p.severity}[/{colour}]{p.line()[len(p.severity) :]}", highlight=False, soft_wrap=True
                )
            if not quiet:
                _say(res.describe())
        if not res.ok:
            raise typer.Exit(1)

    _run(go)


@app.command("check")
def check_cmd(
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the configs, every episode, the assets they name, and that ffmpeg is present and works."""
    from ..catalogue.check import check_all

    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        report = check_all(configs or Path("configs"))
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


# ---------------------------------------------------------------------------------------- a producer's week


@app.command("new")
def new_cmd(
    episode: Annotated[
        str | None, typer.Argument(help="Id of the new episode (default: the latest one's with the next number).")
    ] = None,
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the next episode's config: next number, one cadence after the latest, the hosts, empty recordings."""
    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        from ..catalogue.new import new_episode

        made = new_episode(configs or Path("configs"), episode)
        if as_json:
            _emit_json(made.to_json())
        elif not quiet:
            _say(made.describe())
            _say(f"next: record, then `produce upload-raw {made.episode_id} FILE...` (or list local files in it)")

    _run(go)


@app.command("upload-raw")
def upload_raw_cmd(
    episode: EpisodeArg,
    files: Annotated[list[Path], typer.Argument(help="The raw recordings, in order.")],
    media: Annotated[
        Path | None,
        typer.Option("--media", envvar="KEYLIME_MEDIA", help="Local media folder, not in git (default ./media)."),
    ] = None,
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Upload EPISODE's raw recordings to the bucket's private inbox; write recordings and [[raw]] in its config."""
    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        from ..catalogue.raw import upload_raw

        settings = _settings(configs, None)
        with _progress(not quiet and not as_json) as progress:
            done = upload_raw(settings, episode, files, media_dir=media, **({"progress": progress} if progress else {}))
        if as_json:
            _emit_json({"episode": episode, "files": [f.to_json() for f in done]})
        elif not quiet:
            for f in done:
                _say(f"{f.source}: {f.size:,} bytes, sha256 {f.sha256[:12]}... -> {f.file}")
            _say(f"{episode}: recordings and [[raw]] written; commit the config, not the audio")

    _run(go)


@app.command("prune")
def prune_cmd(
    yes: Annotated[bool, typer.Option("--yes", help="Delete them (without it: only list them).")] = False,
    configs: ConfigsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List the published objects no manifest or feed refers to any more; --yes deletes them."""
    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        from ..publish.prune import prune

        res = prune(_settings(configs, None).show, dry_run=not yes)
        if as_json:
            _emit_json(res.to_json())
        elif not quiet:
            for key, size in res.unreferenced:
                _say(f"  {'would delete' if res.dry_run else 'deleted'} {key} ({size:,} bytes)")
            _say(res.describe())

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
    from ..catalogue.importer import import_feed

    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        folder = configs or Path("configs")
        with _progress(not quiet and not as_json) as progress:
            res = import_feed(
                feed, folder, media_dir=media or Path("media"), fetch=not no_fetch, remaster=remaster,
                **({"progress": progress} if progress else {}),
            )  # fmt: skip
        if as_json:
            _emit_json(res.to_json())
        elif not quiet:
            for line in res.summary():
                out_console.print(line, highlight=False)
        for p in res.problems:
            err_console.print(f"[red]error:[/red] {p}", highlight=False, soft_wrap=True)
        if res.problems:
            raise typer.Exit(ArchiveError.exit_code)

    _run(go)


@app.command("batch")
def batch_cmd(
    episodes: Annotated[list[str] | None, typer.Argument(help="Episode ids (or --all, or --since DATE).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every episode in the configs.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Episodes dated on or after DATE (YYYY-MM-DD).")] = None,
    stages: Annotated[
        str | None, typer.Option("--stages", help="Comma-separated stages to run (default: all, publish last).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", envvar="KEYLIME_DASK_SCHEDULER", help="A running Dask scheduler (default: a LocalCluster)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="LocalCluster processes (default: one per core).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Cores (Whisper threads) per task.")] = 1,
    configs: ConfigsOpt = None,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline for many episodes as Dask tasks, publish each, then rebuild the feed once."""
    import datetime as dt

    from ..catalogue.batch import BatchStatus, run_batch, select_episodes

    _setup_logging(verbose, quiet, as_json)

    def go() -> None:
        settings = _settings(configs, None)
        try:
            day = dt.date.fromisoformat(since) if since else None
        except ValueError:
            raise ConfigError(f"--since {since!r} is not a date such as 2019-01-31") from None
        ids = select_episodes(settings.configs_dir, episodes or (), all_=all_, since=day)
        wanted = [x.strip() for x in stages.split(",") if x.strip()] if stages else None
        with _batch_progress(not quiet and not as_json, len(ids)) as show:

            def on_status(st: BatchStatus) -> None:
                show(st.done + st.failed + st.skipped, f"{st.done} done, {st.failed} failed, {st.skipped} skipped, "
                     f"{st.workers} workers")  # fmt: skip

            result = run_batch(
                settings, ids, stages=wanted, scheduler=scheduler, workers=workers, threads=threads, force=force,
                on_status=on_status,
            )  # fmt: skip
        if as_json:
            _emit_json(result.to_json())
        elif not quiet:
            for line in result.summary():
                out_console.print(line, highlight=False)
        for o in result.failed:
            err_console.print(f"[red]error:[/red] {o.episode_id}: {o.error}", highlight=False, soft_wrap=True)
        if result.failed:
            raise typer.Exit(max(o.exit_code or 1 for o in result.failed))

    _run(go)


@contextmanager
def _batch_progress(enabled: bool, total: int) -> Iterator[Callable[[int, str], None]]:
    """A Rich bar over the batch's episodes, with done/failed/skipped and the cluster's workers beside it."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, info: None
        return
    columns = (TextColumn("[bold]episodes"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("episodes", total=total, info="starting")
        yield lambda done, info: bar.update(task, completed=done, info=info)


def _version_callback(value: bool) -> None:
    if value:
        out_console.print(f"keylime-prod {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
    s3_endpoint_url: S3EndpointOpt = None,
    s3_bucket: S3BucketOpt = None,
    s3_prefix: S3PrefixOpt = None,
    public_base_url: PublicUrlOpt = None,
) -> None:
    """Produce a podcast episode end to end: `produce EPISODE` masters, transcribes, tags and publishes it."""
    given = {
        "endpoint_url": s3_endpoint_url,
        "bucket": s3_bucket,
        "prefix": s3_prefix,
        "public_base_url": public_base_url,
    }
    _State.storage = {f"storage.{k}": v for k, v in given.items()}


def main() -> None:
    """Console-script entry point."""
    app(prog_name="produce")
