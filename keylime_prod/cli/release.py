"""Release commands: ``produce publish`` (an episode, or every due one), ``produce verify`` (the live feed) and
``produce prune`` (published objects nothing refers to any more)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import ConfigError
from .app import READS, AllowPrivateOpt, Cli, Reply, command


def print_published(cli: Cli, res: Any) -> None:
    """One line per file and one for the feed (what ``produce publish`` did, or would do with --dry-run)."""
    if not cli.for_people:
        return
    verb = {"uploaded": "[green]↑[/green]", "present": "=", "upload": "[yellow]would upload[/yellow]", "keep": "="}
    for e in res.episodes:
        state = "live" if e.live else ("scheduled for " + e.publish_date.isoformat() if e.scheduled else "not live")
        if res.dry_run:
            state = "dry run"
        # Data (ids, paths, keys) is escaped: a folder named "[draft]" is printed, not taken for a style.
        cli.say(f"[bold]{escape(e.episode_id)}[/bold] ({escape(state)}) -> {escape(str(res.target))}", markup=True)
        for f in e.files:
            how = f" verified by {f.verified_by}" if f.verified_by else ""
            mark = verb.get(f.action, escape(f.action))
            cli.say(f"  {mark} {escape(f.key)} ({f.size:,} bytes){escape(how)}", markup=True)
    feed = ("would be written" if res.dry_run else "written") if res.feed_updated else "unchanged"
    # Where the feed file is (a local folder or a bucket) and, apart, the URL apps will read it at: a local publish
    # writes a folder, not the public URL.
    cli.say(
        f"feed {feed}: {res.target}/{res.feed_key.rsplit('/', 1)[-1]} ({res.feed_items} items), "
        f"public URL {res.feed_url}"
    )


@command("publish", takes=READS)
def publish_cmd(
    cli: Cli,
    episode: Annotated[
        str | None, typer.Argument(metavar="EPISODE", help="Episode id: publish what its build folder holds.")
    ] = None,
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
) -> Reply:
    """Upload EPISODE's files, verify each, write its manifest, then update the feed last (or --due: every due one).

    With no endpoint configured it publishes into public/; KEYLIME_S3_ENDPOINT_URL, KEYLIME_S3_BUCKET,
    KEYLIME_S3_PREFIX and KEYLIME_PUBLIC_BASE_URL override show.toml; keys come from AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY or an AWS profile.
    """
    from ..pipeline.release import publish_due, publish_episodes

    if (episode is None) == (not due):
        raise ConfigError(
            "give an EPISODE or --due (not both)", hint="produce publish episode-258, or produce publish --due"
        )
    settings = cli.settings()
    if episode is not None:
        with cli.progress() as progress:
            res = publish_episodes(settings, [episode], dry_run=dry_run, progress=progress, withdraw=withdraw)
        print_published(cli, res)
        return Reply(res.to_json())
    with cli.progress() as progress:
        result = publish_due(settings, dry_run=dry_run, progress=progress, on_stage=cli.on_stage)
    if not result.due:
        cli.say("nothing is due: every episode whose date has come is live")
    for d in result.due:
        cli.say(f"due: {d.episode_id} ({d.publish_date.date()}, {d.reason})")
    for ep_id in result.unbuilt:
        cli.say(f"  {ep_id} would be built first")
    if result.published is not None:
        print_published(cli, result.published)
    failures = [f"{f.episode_id}: {f.error}" for f in result.failures]
    return Reply.failing(result.to_json(), failures, max((f.error.exit_code for f in result.failures), default=0))


@command("verify", takes=READS)
def verify_cmd(
    cli: Cli,
    episodes: Annotated[
        list[str] | None, typer.Argument(metavar="EPISODE...", help="Episode id(s) to check (or --all).")
    ] = None,
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
    allow_private: AllowPrivateOpt = False,
) -> Reply:
    """Check the live feed as a podcast app would: tags, byte ranges, media types, artwork, guids, loudness, ID3.

    One line per problem; exit 1 when there is any error (warnings do not fail). See docs/release.md.
    """
    from ..catalogue.release_check import check_live_show

    if bool(episodes) == every:
        raise ConfigError("give EPISODE(s) or --all (not both)", hint="produce verify episode-258, or --all")
    if audio != "all" and not audio.isdigit():
        raise ConfigError(f"--audio {audio!r}: give a number or 'all'")
    res = check_live_show(
        cli.settings(), None if every else episodes, offline=offline, feed_url=feed_url, state=state,
        audio="all" if audio == "all" else int(audio), allow_private=allow_private,
    )  # fmt: skip
    for p in res.problems:
        colour = "red" if p.severity == "error" else "yellow"
        cli.warn(f"[{colour}]{p.severity}[/{colour}]{escape(p.line()[len(p.severity) :])}")
    cli.say(res.describe())
    # Problems are results (printed above, listed in the JSON), not errors to print again.
    return Reply(res.to_json(), exit_code=0 if res.ok else 1, summary=res.describe())


@command("prune", takes=("configs",))
def prune_cmd(
    cli: Cli,
    yes: Annotated[bool, typer.Option("--yes", help="Delete them (without it: only list them).")] = False,
) -> Reply:
    """List the published objects no manifest or feed refers to any more; --yes deletes them."""
    from ..publish.prune import prune

    res = prune(cli.settings().show, dry_run=not yes)
    for key, size in res.unreferenced:
        cli.say(f"  {'would delete' if res.dry_run else 'deleted'} {key} ({size:,} bytes)")
    cli.say(res.describe())
    return Reply(res.to_json())
