"""``produce models ...``: the bundled Whisper models, and an openai-whisper checkpoint made from one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .app import Cli, Reply, command, subcommands

models = subcommands("models", "Whisper models: list the bundled ones, export one for openai-whisper.")


@command("list", takes=(), group=models)
def models_list_cmd(cli: Cli) -> Reply:
    """List the bundled models, whether their packages are installed, and the model cache folder."""
    from ..transcript import weights

    listed = []
    for name, installed, hint in weights.bundled_status():
        listed.append({"name": name, "installed": installed, "install": None if installed else hint})
        mark = "[green]✓[/green]" if installed else "[yellow]-[/yellow]"
        cli.say(f"{mark} {escape(name)}" + ("" if installed else f"  ({escape(hint)})"), markup=True)
    cache = weights.default_cache_dir()
    cli.say(f"cache: {cache}")
    return Reply({"models": listed, "cache": str(cache)})


@command("export-openai", takes=(), group=models)
def models_export_cmd(
    cli: Cli,
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Bundled name (tiny.en, base) or a CTranslate2 model folder.")
    ] = "tiny.en",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also copy the checkpoint here (file or folder).")
    ] = None,
) -> Reply:
    """Convert a CTranslate2 Whisper model into an openai-whisper checkpoint (cached; same weights, bit for bit)."""
    from ..transcript import weights

    path = weights.export_openai(model, cache_dir=weights.default_cache_dir(), dest=out)
    cli.say(str(path))
    return Reply({"model": model, "checkpoint": str(path)})
