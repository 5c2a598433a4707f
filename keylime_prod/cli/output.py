"""Where the ``produce`` command's words go: the two consoles, the log handler, and progress.

A terminal gets colour, Rich progress bars and lines wrapped to its width. Anything else (a CI log, a pipe, a file)
gets plain lines that are never wrapped, so a path is never broken in two, log lines stamped in ISO 8601, and a
progress line for a long step every :data:`PROGRESS_EVERY_S` seconds instead of a bar nobody sees.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
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
    """Progress for a log that is not a terminal: a line every ``every`` seconds while a step runs.

    ``episode-258: transcribe: 42%, 1:30 so far``. A step is a pipeline stage (:meth:`step`, from the pipeline's
    ``on_stage``) or, outside the pipeline, whatever reports progress. Lines come from a clock, not from progress
    updates: a stage that reports rarely (Whisper, a 10-minute block at a time) or never is still seen working. A
    step shorter than ``every`` stays silent; its start and end are logged by the pipeline already. Use it as a
    context manager (the clock runs inside), and call it as a :data:`ProgressFn`.
    """

    def __init__(self, every: float = PROGRESS_EVERY_S, emit: Callable[[str], None] | None = None) -> None:
        self.every = every
        self.emit = emit or log.info
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None
        self._step: str | None = None  # what runs now
        self._named = False  # the step was named by step(), not taken from a progress description
        self._since = 0.0  # when it started (monotonic)
        self._last_line = 0.0
        self._latest: tuple[str, float, float, str] | None = None  # description, done, total, detail

    def __call__(self, description: str, done: float, total: float, detail: str = "") -> None:
        with self._lock:
            now = time.monotonic()
            if not self._named and description != self._step:
                self._step, self._since, self._last_line = description, now, now
            self._latest = (description, done, total, detail)

    def step(self, name: str | None) -> None:
        """``name`` starts now (None: the step ended)."""
        with self._lock:
            now = time.monotonic()
            self._step, self._named, self._since, self._last_line, self._latest = name, name is not None, now, now, None

    def tick(self) -> None:
        """Say how far the step got, if ``every`` seconds passed since its start or the last line."""
        with self._lock:
            now = time.monotonic()
            if self._step is None or now - self._last_line < self.every:
                return
            self._last_line = now
            line = f"{self._step}: running, {_clock(now - self._since)} so far"
            if self._latest is not None:
                description, done, total, detail = self._latest
                if total > 0 and done < total:
                    same = self._step == description or self._step.endswith(f": {description}")
                    what = "" if same else f"{description} "
                    extra = f" ({detail})" if detail else ""
                    line = f"{self._step}: {what}{min(max(done / total, 0.0), 1.0):.0%}{extra}, "
                    line += f"{_clock(now - self._since)} so far"
                elif not self._named:
                    self._step = None  # a step known only by its progress ended when that reached its total
                    return
        self.emit(line)

    def __enter__(self) -> ProgressLines:
        def run() -> None:
            while not self._stop.wait(min(self.every / 4, 1.0)):
                self.tick()

        self._clock = threading.Thread(target=run, name="progress-lines", daemon=True)
        self._clock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._clock is not None:
            self._clock.join()


@contextmanager
def progress_display(err: Console, enabled: bool) -> Iterator[ProgressFn | None]:
    """Rich bars on a terminal (a task per description, made on first use), :class:`ProgressLines` elsewhere."""
    if not enabled:
        yield None
        return
    if not err.is_terminal:
        with ProgressLines() as lines:
            yield lines
        return
    # Descriptions and details hold file names and titles: never parsed as markup (markup=False).
    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
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
        with ProgressLines() as lines:
            lines.step(what)
            yield lambda done, info: lines(what, done, total, f"{done}/{total}: {info}")
        return
    columns = (TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f}"), TextColumn("{task.fields[info]}", markup=False),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=total, info="starting")
        yield lambda done, info: bar.update(task, completed=done, info=info)
