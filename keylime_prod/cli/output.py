"""Where the ``produce`` command's words go: the two consoles, the log handler, and progress.

A terminal gets colour, Rich progress bars and lines wrapped to its width. Anything else (a CI log, a pipe, a file)
gets plain lines that are never wrapped, so a path is never broken in two, log lines stamped in ISO 8601, and a
progress line per long step every :data:`PROGRESS_EVERY_S` seconds instead of a bar nobody sees.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ..errors import redact
from ..progress import ProgressFn

log = logging.getLogger("keylime_prod.cli")

#: How often a long step says how far it got when stderr is not a terminal (a CI log shows no progress bar).
PROGRESS_EVERY_S = 30.0
#: Console width off a terminal: wide enough that Rich never wraps a line (a table is only as wide as its cells).
_UNWRAPPED = 100_000
#: Third-party loggers kept at INFO even with --verbose: their debug output can carry signed request headers.
_CHATTY = ("botocore", "boto3", "urllib3", "s3transfer")


def console(*, stderr: bool) -> Console:
    """A console on stdout or stderr: Rich's own on a terminal, an unwrapped plain one otherwise."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=_UNWRAPPED, soft_wrap=True)


def iso_time(when: float | dt.datetime) -> str:
    """``2026-12-07T06:05:44+00:00``: local time with its offset, to the second (ISO 8601)."""
    moment = when if isinstance(when, dt.datetime) else dt.datetime.fromtimestamp(when)
    return moment.astimezone().isoformat(timespec="seconds")


class _IsoFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


class Redact(logging.Filter):
    """Credentials in URLs never reach the terminal, whatever logged them (errors.redact)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = record.exc_text = None
        record.msg, record.args = redact(text), ()
        return True


def setup_logging(err: Console, *, verbose: bool, quiet: bool) -> None:
    """Send the package's log to ``err``: debug with ``verbose``, errors only with ``quiet``, else info."""
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.INFO)
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(
            console=err, show_path=verbose, rich_tracebacks=False, markup=False,
            log_time_format=lambda moment: Text(iso_time(moment)),
        )  # fmt: skip
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(err.file)
        handler.setFormatter(_IsoFormatter("%(asctime)s %(levelname)-7s %(message)s"))
    handler.addFilter(Redact())
    root = logging.getLogger("keylime_prod")
    root.handlers.clear()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    if verbose:
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.INFO)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class ProgressLines:
    """A :data:`ProgressFn` for logs that are not a terminal: one line per step at most every ``every`` seconds.

    ``transcribe: 42% after 1:30, about 2:04 left``. The first line comes ``every`` seconds after the step's first
    update, so a short step stays silent (its start and end are logged by the pipeline already).
    """

    def __init__(self, every: float = PROGRESS_EVERY_S, emit: Callable[[str], None] | None = None) -> None:
        self.every = every
        self.emit = emit or log.info
        self._seen: dict[str, tuple[float, float]] = {}  # description -> (first update, last line)

    def __call__(self, description: str, done: float, total: float) -> None:
        now = time.monotonic()
        first, last = self._seen.setdefault(description, (now, now))
        if now - last < self.every:
            return
        self._seen[description] = (first, now)
        elapsed = now - first
        if total <= 0:
            self.emit(f"{description}: working, {_clock(elapsed)} so far")
            return
        share = min(max(done / total, 0.0), 1.0)
        left = f", about {_clock(elapsed * (1 - share) / share)} left" if 0 < share < 1 else ""
        self.emit(f"{description}: {share:.0%} after {_clock(elapsed)}{left}")


@contextmanager
def progress_display(err: Console, enabled: bool) -> Iterator[ProgressFn | None]:
    """Rich bars on a terminal (a task per description, made on first use), :class:`ProgressLines` elsewhere."""
    if not enabled:
        yield None
        return
    if not err.is_terminal:
        yield ProgressLines()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(description: str, done: float, total: float) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done, total=total)

        yield update


@contextmanager
def count_display(err: Console, enabled: bool, what: str, total: int) -> Iterator[Callable[[int, str], None]]:
    """Progress over ``total`` items with a line of detail: a Rich bar on a terminal, a periodic line elsewhere."""
    if not enabled:
        yield lambda done, info: None
        return
    if not err.is_terminal:
        latest = {"info": "starting"}
        lines = ProgressLines(emit=lambda text: log.info("%s (%s)", text, latest["info"]))

        def show(done: int, info: str) -> None:
            latest["info"] = info
            lines(what, done, total)

        yield show
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=total, info="starting")
        yield lambda done, info: bar.update(task, completed=done, info=info)
