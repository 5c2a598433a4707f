"""Catalogue commands, beside the per-episode ones: a producer's week (``produce new``, ``produce upload-raw``), and
``produce check``, ``produce import FEED``, ``produce batch``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ArchiveError, ConfigError
from .app import AllowPrivateOpt, Cli, EpisodeArg, Reply, command


@command("new", takes=("configs",))
def new_cmd(
    cli: Cli,
    episode: Annotated[
        str | None,
        typer.Argument(
            metavar="EPISODE", help="Id of the new episode (default: the latest one's with the next number)."
        ),
    ] = None,
) -> Reply:
    """Write the next episode's config: next number, one cadence after the latest, the hosts, empty recordings."""
    from ..catalogue.new import new_episode

    made = new_episode(cli.configs or Path("configs"), episode)
    cli.say(made.describe())
    cli.say(f"next: record, then `produce upload-raw {made.episode_id} FILE...` (or list local files in it)")
    return Reply(made.to_json())


@command("upload-raw", takes=("configs",))
def upload_raw_cmd(
    cli: Cli,
    episode: EpisodeArg,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="The raw recordings, in order.")],
    media: Annotated[
        Path | None,
        typer.Option("--media", envvar="KEYLIME_MEDIA", help="Local media folder, not in git (default ./media)."),
    ] = None,
) -> Reply:
    """Upload EPISODE's raw recordings to the bucket's private inbox; write recordings and [[raw]] in its config."""
    from ..catalogue.raw import upload_raw

    settings = cli.settings()
    with cli.progress() as progress:
        done = upload_raw(settings, episode, files, media_dir=media, **({"progress": progress} if progress else {}))
    for f in done:
        cli.say(f"{f.source}: {f.size:,} bytes, sha256 {f.sha256[:12]}... -> {f.file}")
    cli.say(f"{episode}: recordings and [[raw]] written; commit the config, not the audio")
    return Reply({"episode": episode, "files": [f.to_json() for f in done]})


@command("check", takes=("configs",))
def check_cmd(cli: Cli) -> Reply:
    """Check the configs, every episode, the assets they name, and that ffmpeg is present and works."""
    from ..catalogue.check import check_all

    report = check_all(cli.configs or Path("configs"))
    for line in report.lines:
        cli.say(f"[green]✓[/green] {escape(line)}", markup=True)
    return Reply.failing(report.to_json(), report.errors, max((e.exit_code for e in report.errors), default=0))


@command("import", takes=("configs",))
def import_cmd(
    cli: Cli,
    feed: Annotated[str, typer.Argument(metavar="FEED", help="The old feed: an http(s) URL or a file.")],
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
    allow_private: AllowPrivateOpt = False,
) -> Reply:
    """Import an existing show's feed: a config per item (its guid kept forever) and its media, resumably."""
    from ..catalogue.importer import import_feed

    with cli.progress() as progress:
        res = import_feed(
            feed, cli.configs or Path("configs"), media_dir=media or Path("media"), fetch=not no_fetch,
            remaster=remaster, allow_private=allow_private, **({"progress": progress} if progress else {}),
        )  # fmt: skip
    for line in res.summary():
        cli.say(line)
    return Reply.failing(res.to_json(), res.problems, ArchiveError.exit_code)


@command("batch", takes=("configs", "force"))
def batch_cmd(
    cli: Cli,
    episodes: Annotated[
        list[str] | None, typer.Argument(metavar="EPISODE...", help="Episode ids (or --all, or --since DATE).")
    ] = None,
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
    allow_private: AllowPrivateOpt = False,
) -> Reply:
    """Run the pipeline for many episodes as Dask tasks, publish each, then rebuild the feed once."""
    from ..catalogue.batch import BatchStatus, run_batch, select_episodes

    settings = cli.settings()
    try:
        day = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise ConfigError(f"--since {since!r} is not a date such as 2019-01-31") from None
    ids = select_episodes(settings.configs_dir, episodes or (), all_=all_, since=day)
    wanted = [x.strip() for x in stages.split(",") if x.strip()] if stages else None
    with cli.count("episodes", len(ids)) as show:

        def on_status(st: BatchStatus) -> None:
            show(st.done + st.failed + st.skipped, f"{st.done} done, {st.failed} failed, {st.skipped} skipped, "
                 f"{st.workers} workers")  # fmt: skip

        result = run_batch(
            settings, ids, stages=wanted, scheduler=scheduler, workers=workers, threads=threads, force=cli.force,
            on_status=on_status, allow_private=allow_private,
        )  # fmt: skip
    for line in result.summary():
        cli.say(line)
    failures = [f"{o.episode_id}: {o.error}" for o in result.failed]
    return Reply.failing(result.to_json(), failures, max((o.exit_code or 1 for o in result.failed), default=0))
