"""``produce review EPISODE``: build the episode up to publishing, then serve its review page on 127.0.0.1 until
Ctrl-C (docs/review.md)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from .app import Cli, EpisodeArg, Reply, command


@command("review")
def review_cmd(
    cli: Cli,
    episode: EpisodeArg,
    open_page: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in the web browser (--no-open for CI).")
    ] = True,
) -> Reply:
    """Review EPISODE in a local web page: listen, fix words, decide cuts, name speakers, move chapters, apply.

    Builds every stage before publishing, then serves the page on 127.0.0.1 (a port the system picks, a secret
    token in the URL) until Ctrl-C. Decisions go to the episode's edit files beside its config; `produce publish`
    ships the result.
    """
    from ..review import Review, ReviewServer, build_for_review
    from ..review.server import require_extra

    require_extra()  # before the build: a missing extra is one line, not a wasted build
    settings = cli.settings()
    with cli.progress() as progress:
        built = build_for_review(
            settings, episode, force=cli.force, progress=progress, on_stage=partial(cli.on_stage, episode)
        )

    def rebuild() -> dict[str, object]:
        return build_for_review(settings, episode)

    server = ReviewServer(Review(settings, episode, rebuild)).start()
    try:
        # The URL is the key to the page: shown on the terminal of the one who started it (stderr, also with --json,
        # whose stdout is the one document), nowhere else.
        cli.err.print(f"review page: {server.url}  (Ctrl-C to stop)", highlight=False, soft_wrap=True)
        if open_page:
            import webbrowser

            webbrowser.open(server.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            cli.say("review stopped")
    finally:
        server.stop()
    return Reply({"episode": episode, **built})
