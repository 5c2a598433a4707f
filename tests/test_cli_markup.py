"""Rich never parses markup in data: titles, paths, keys and ids that look like Rich tags (``[/r/medicine]``, a
closing tag with nothing open, makes Rich raise; ``[draft]`` would be taken for a style and vanish) print verbatim
in every command's output, in error lines and in progress bars (docs/reliability.md)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from support import tagging as tf
from typer.testing import CliRunner

from keylime_prod.cli import app
from keylime_prod.cli.output import count_display, progress_display
from keylime_prod.config import load_settings
from keylime_prod.pipeline import mark_up_to_date

MARKUP = "[/r/medicine] [draft] [bold red]x[/]"


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_titles_and_paths_that_look_like_markup_print_verbatim(tmp_path: Path) -> None:
    root = tmp_path / "[draft]"
    cfg = tf.write_configs(root, title=MARKUP)
    build = root / "build"
    tf.make_master(build / tf.EPISODE_ID, tf.make_mp3(root / "pristine.mp3"))
    mark_up_to_date(load_settings(cfg, build), tf.EPISODE_ID, "master")

    check = _cli("check", "--configs", str(cfg))
    assert f"{tf.EPISODE_ID} (2019-11-26, " in check.stdout and f"): {MARKUP}" in check.stdout, check.output

    published = _cli("publish", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build))
    assert published.exit_code == 0, published.output
    assert f"{tf.EPISODE_ID} (live) -> {root / 'public'}" in published.stdout, published.stdout

    # An error line naming a path with markup in it.
    feed = f"{root}/[/r/medicine].xml"  # a folder "[" and a file "r", "medicine].xml": not there
    missing = _cli("import", feed, "--configs", str(cfg))
    assert missing.exit_code != 0 and feed in missing.stderr, missing.stderr


def test_progress_bars_print_descriptions_verbatim() -> None:
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=200, color_system=None)
    with progress_display(term, True) as update:
        assert update is not None
        update(f"Fetching {MARKUP}.mp3", 1, 2)
    with count_display(term, True, f"episodes {MARKUP}", 2) as show:
        show(1, f"1 done, {MARKUP}")
    out = buf.getvalue()
    assert f"Fetching {MARKUP}.mp3" in out and f"episodes {MARKUP}" in out and f"1 done, {MARKUP}" in out, out
