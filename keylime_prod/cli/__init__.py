"""The ``produce`` command: a thin Typer + Rich layer over the library.

``app.py`` holds the application, the options every command shares and the one wrapper every command runs through
(logging, error mapping, ``--json``); ``output.py`` where words go (consoles, log lines, progress). The commands sit
by family, in flow order: ``episode.py`` (``produce EPISODE`` and a command per stage), ``edit.py`` (``produce
cuts``), ``review.py`` (the review page), ``release.py`` (publish, verify), ``catalogue.py`` (check, import, batch),
``weights.py`` (``produce models
...``). A new command is a function decorated with :func:`app.command` in one of them.
"""

from __future__ import annotations

# Importing a family registers its commands on the app; the help lists them in this order, the flow's.
# isort: off
from . import episode, edit, review, release, catalogue, weights  # noqa: F401

# isort: on
from .app import Cli, Reply, _State, app, command, main
from .output import Redact as _Redact

__all__ = ["Cli", "Reply", "_Redact", "_State", "app", "command", "main"]
