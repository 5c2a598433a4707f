"""Child processes started as a user's shell starts them."""

from __future__ import annotations

import signal


def sigint_default() -> None:
    """``preexec_fn`` for a child that must see Ctrl-C: SIGINT back to its default. A runner started in the
    background (``cmd &`` in a non-interactive shell) ignores SIGINT, and a child inherits an ignored signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
