"""The ``produce`` application: the Typer app, the options every command shares, and the one wrapper all commands run
through (beets' ``ui.main()``, fastapi-cli's ``_run()``).

A command is a plain function registered with :func:`command`. It takes a :class:`Cli` first, declares only its own
arguments and options, says what it has for people with :meth:`Cli.say`, and returns a :class:`Reply`: its JSON
document and, if it finished with failures, which. The wrapper adds ``--verbose``, ``--quiet`` and ``--json`` to
every command (and ``--configs``, ``--build-dir``, ``--force`` to those that ask), sets up logging, turns every error
into one line on stderr and an exit code (the traceback only with ``--verbose``, 130 quietly on Ctrl-C), and with
``--json`` prints exactly one JSON document on stdout, on success and on failure alike. This is the only place that
prints errors and picks exit codes. A new command (an example), in the family module it belongs to::

    @command("prune", takes=READS)
    def prune_cmd(cli: Cli, keep: Annotated[int, typer.Option(help="Builds to keep per episode.")] = 3) -> Reply:
        '''Remove old build folders, keeping the newest KEEP of each episode.'''  # its help text
        removed = prune_builds(cli.settings(), keep=keep)  # library errors raise; the wrapper prints them
        cli.say(f"removed {len(removed)} folder(s)")
        return Reply({"removed": [str(p) for p in removed]})
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

try:  # Typer 0.2x and later carry their own copy of Click; older ones use Click itself.
    from typer._click import ClickException, Command, Context, Parameter
except ImportError:  # pragma: no cover
    from click import ClickException, Command, Context, Parameter  # type: ignore[assignment]

from .. import __version__
from ..config import Settings, StorageSettings, load_settings, storage_sources
from ..errors import KeylimeError, redact
from ..progress import ProgressFn
from .output import ProgressLines, console, count_display, progress_display, setup_logging

#: Exit codes (documented in the README): 0 success; 1 any other error; 2 bad config or usage; 3 ffmpeg;
#: 4 audio; 5 transcript or notes; 6 tags; 7 storage; 8 feed; 9 publishing; 10 archive; 11 report; 12 verify;
#: 13 cut candidates; 14 review page; 130 interrupted. A KeylimeError carries its own (errors.py).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

#: The hidden command ``produce EPISODE`` runs.
DEFAULT_COMMAND = "run"


def _plain_flags(params: Sequence[Parameter | None]) -> None:
    # Typer shows a flag's type (``<bool>``) in the help; a flag takes no value, so it shows none.
    for p in params:
        if p is not None and p.param_type_name == "option" and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


class _PlainFlagsHelp:
    """Flags (--help among them) show no value type in the help, on commands and on the group alike."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_flags(self.params)

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _plain_flags([option])
        return option


class _Command(_PlainFlagsHelp, TyperCommand):
    """Every ``produce`` command."""


class _DefaultCommand(_Command):
    """``produce EPISODE``: reached by the episode id itself, so its usage names that, not ``run``."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        if ctx.info_name == DEFAULT_COMMAND:
            return pieces
        # ``produce episode-258 --help``: the id typed stands where the command name does; only options follow.
        return [p for p in pieces if p == self.options_metavar]


class _ProduceGroup(_PlainFlagsHelp, TyperGroup):
    """``produce``: a first argument that names no command is an episode id for the default command; with
    ``--json`` a usage error is one JSON document on stdout too."""

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        name = args[0]
        if name not in self.commands and not name.startswith("-"):
            # The id stays in ``args`` as the default command's EPISODE argument; it also names the command,
            # so the usage line says ``produce episode-258``.
            return name, self.commands[DEFAULT_COMMAND], args
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(
                argv, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        except ClickException as e:
            if "--json" in argv:
                emit_json(_failure({}, e.format_message(), e.exit_code, type(e).__name__))
            if not standalone_mode:
                raise
            try:
                from typer import rich_utils

                rich_utils.rich_format_error(e)
            except ImportError:  # pragma: no cover  (Typer without Rich)
                e.show()
            sys.exit(e.exit_code)
        except typer.Abort:  # a prompt met the end of its input (Click's "Aborted!")
            if "--json" in argv:
                emit_json(_failure({}, "aborted", EXIT_ERROR, "Abort"))
            if not standalone_mode:
                raise
            console(stderr=True).print("aborted", highlight=False)
            sys.exit(EXIT_ERROR)
        # Not standalone, Typer returns the command's value, or the code of an Exit raised on the way.
        code = code if isinstance(code, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_ProduceGroup,
    help="Produce a podcast episode end to end: `produce EPISODE` masters, transcribes, tags and publishes it.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    subcommand_metavar="EPISODE | COMMAND [ARGS]...",
    context_settings={"help_option_names": ["-h", "--help"]},
    # A traceback's local variables can hold a signed URL or a key: never print them.
    pretty_exceptions_show_locals=False,
)


# ------------------------------------------------------------------------------------------------ common options
# Declared once here (fastapi-cli's Annotated shape) and added to each command by `command`. Options default to None
# so config.load_settings lays only what was given on top of show.toml; an option that mirrors an environment
# variable says so with ``envvar=``.

EpisodeArg = Annotated[str, typer.Argument(metavar="EPISODE", help="Episode id, e.g. episode-258.")]
ConfigsOpt = Annotated[
    Path | None,
    typer.Option(
        "--configs", envvar="KEYLIME_CONFIGS", help="Folder with show.toml and episodes/ (default ./configs)."
    ),
]
BuildDirOpt = Annotated[Path | None, typer.Option("--build-dir", help="Root of the build folders (default ./build).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo stages even when their cached result is up to date.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and tracebacks on errors.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors; no progress.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout: the result, or the error on failure.")
]

Common = Literal["configs", "build_dir", "force"]
#: What a command that builds an episode takes besides --verbose, --quiet and --json.
BUILDS: tuple[Common, ...] = ("configs", "build_dir", "force")
#: What a command that reads the configs and the build folder (but never rebuilds) takes.
READS: tuple[Common, ...] = ("configs", "build_dir")

_COMMON: dict[str, tuple[Any, Any]] = {
    "configs": (ConfigsOpt, None),
    "build_dir": (BuildDirOpt, None),
    "force": (ForceOpt, False),
    "verbose": (VerboseOpt, False),
    "quiet": (QuietOpt, False),
    "as_json": (JsonOpt, False),
}

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
#: Fetching from this machine or its network is refused by default (docs/security.md, "What the network may do").
AllowPrivateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-private",
        envvar="KEYLIME_ALLOW_PRIVATE",
        help="Also fetch from loopback, link-local and private addresses (a host on this machine or network).",
    ),
]


class _State:
    """What the app callback read before any command ran: the storage options (or their KEYLIME_S3_* variables)."""

    storage: dict[str, str | None] = {}  # noqa: RUF012  (set once per process by the callback)


# ------------------------------------------------------------------------------------------ what a command gets


@dataclass
class Cli:
    """What every command receives: the common options, and the only ways it speaks to people."""

    configs: Path | None = None
    build_dir: Path | None = None
    force: bool = False
    verbose: bool = False
    quiet: bool = False
    as_json: bool = False
    out: Console = field(default_factory=lambda: console(stderr=False))
    err: Console = field(default_factory=lambda: console(stderr=True))
    _lines: ProgressLines | None = field(default=None, init=False, repr=False)

    @property
    def for_people(self) -> bool:
        """Whether to print results for people: not with --quiet, and not with --json (stdout is the document)."""
        return not (self.quiet or self.as_json)

    def say(self, text: str, *, markup: bool = False) -> None:
        """One line on stdout for people (nothing with --quiet or --json). ``markup`` allows Rich colour tags."""
        if self.for_people:
            self.out.print(text if markup else escape(text), highlight=False)

    def warn(self, text: str) -> None:
        """One line on stderr, with Rich markup (problems a command reports as results); nothing with --json."""
        if not self.as_json:
            self.err.print(redact(text), highlight=False)

    def settings(self, **overrides: Any) -> Settings:
        """show.toml, the episode configs' folder and the build folder, with the storage options and ``overrides``
        (dotted names; None means not given) laid on top by config.load_settings."""
        return load_settings(self.configs, self.build_dir, sources=storage_sources(), **_State.storage, **overrides)

    @contextmanager
    def progress(self) -> Iterator[ProgressFn | None]:
        """Progress for the stages: bars on a terminal, a line every 30 s in a log, none with --quiet or --json."""
        with progress_display(self.err, self.for_people) as shown:
            self._lines = shown if isinstance(shown, ProgressLines) else None
            try:
                yield shown
            finally:
                self._lines = None

    def on_stage(self, episode: str, stage: str, what: str) -> None:
        """The pipeline's ``on_stage`` (with the episode first): in a log, the progress lines name the running stage.
        Nothing is printed here: the pipeline logs each stage once as it starts and ends."""
        if self._lines is not None:
            self._lines.step(f"{episode}: {stage}" if what == "start" else None)

    def count(self, what: str, total: int) -> AbstractContextManager[Callable[[int, str], None]]:
        """Progress over ``total`` items (episodes in a batch) with a line of detail beside it."""
        return count_display(self.err, self.for_people, what, total)


@dataclass(frozen=True)
class Reply:
    """What a command hands back: its JSON document and, when it finished with failures without raising, which.

    ``errors`` are printed one per line on stderr whatever the options; ``exit_code`` is non-zero when the command
    failed; ``summary`` is the failure in one line for the JSON document (default: the errors joined).
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    errors: Sequence[str] = ()
    summary: str = ""

    @classmethod
    def failing(cls, data: Mapping[str, Any], errors: Sequence[object], exit_code: int) -> Reply:
        """A reply whose command met ``errors`` (strings or KeylimeErrors) and exits with ``exit_code``."""
        return cls(data, exit_code if errors else EXIT_OK, [str(e) for e in errors])


def emit_json(obj: Any) -> None:
    """The one JSON document of a ``--json`` run, on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _failure(data: Mapping[str, Any], error: str, exit_code: int, kind: str | None = None) -> dict[str, Any]:
    doc = {**data, "ok": False, "error": error, "exit_code": exit_code}
    if kind:
        doc["kind"] = kind
    return doc


def _print_error(err: Console, line: str) -> None:
    err.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)


def _invoke(fn: Callable[..., Reply], cli: Cli, kwargs: dict[str, Any]) -> None:
    """Run one command: logging first, then the command, then its reply or its error, printed once."""
    setup_logging(cli.err, verbose=cli.verbose, quiet=cli.quiet or cli.as_json)
    try:
        reply = fn(cli, **kwargs)
    except KeyboardInterrupt:
        cli.err.print("interrupted", highlight=False)
        if cli.as_json:
            emit_json(_failure({}, "interrupted", EXIT_INTERRUPTED, "KeyboardInterrupt"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (KeylimeError, OSError) as e:
        if isinstance(e, KeylimeError):
            line, code = str(e), e.exit_code
        else:
            line, code = (f"{e.filename}: " if getattr(e, "filename", None) else "") + str(e.strerror or e), EXIT_ERROR
        line = redact(line)
        if cli.verbose:
            cli.err.print(redact("".join(traceback.format_exception(e)).rstrip()), highlight=False, markup=False)
        _print_error(cli.err, line)
        if cli.as_json:
            emit_json(_failure({}, line, code, type(e).__name__))
        raise typer.Exit(code) from None
    except (typer.Exit, typer.Abort, ClickException):
        raise  # the app's own ways out (usage errors among them): the group handles them
    except Exception as e:
        # A bug, not an error a user can fix: the JSON reader still gets its document; the traceback follows.
        if cli.as_json:
            emit_json(_failure({}, redact(f"{type(e).__name__}: {e}"), EXIT_ERROR, type(e).__name__))
        raise
    for line in reply.errors:
        _print_error(cli.err, redact(line))
    if cli.as_json:
        summary = reply.summary or "; ".join(reply.errors) or f"failed with exit code {reply.exit_code}"
        emit_json(reply.data if reply.exit_code == EXIT_OK else _failure(reply.data, redact(summary), reply.exit_code))
    if reply.exit_code != EXIT_OK:
        raise typer.Exit(reply.exit_code)


F = TypeVar("F", bound=Callable[..., Reply])


def command(
    name: str, *, takes: Sequence[Common] = BUILDS, group: typer.Typer | None = None, hidden: bool = False
) -> Callable[[F], F]:
    """Register ``fn(cli, ...)`` as ``produce NAME``, with the common options ``takes`` names and --verbose, --quiet
    and --json added, and every run going through :func:`_invoke`. The function's docstring is its help."""

    def register(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        _cli, *own = signature.parameters.values()
        clash = {p.name for p in own} & set(_COMMON)
        if clash:
            raise TypeError(f"{fn.__name__}: {sorted(clash)} are common options; take them from the Cli")
        wanted = [*takes, "verbose", "quiet", "as_json"]
        common = [
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=_COMMON[k][1], annotation=_COMMON[k][0])
            for k in wanted
        ]
        params = [*own, *common]

        def run(**kwargs: Any) -> None:
            options = {k: kwargs.pop(k) for k in wanted}
            _invoke(fn, Cli(**options), kwargs)

        run.__name__, run.__qualname__, run.__module__ = fn.__name__, fn.__qualname__, fn.__module__
        run.__doc__ = fn.__doc__
        run.__signature__ = signature.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        cls = _DefaultCommand if name == DEFAULT_COMMAND else _Command
        (group or app).command(name, hidden=hidden, cls=cls)(run)
        return fn

    return register


def _version_callback(value: bool) -> None:
    if value:
        console(stderr=False).print(f"keylime-prod {__version__}", highlight=False)
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


class _ProduceSubGroup(TyperGroup):
    """A command family (``produce models``): its flags show no value type either."""

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)
        _plain_flags([option])
        return option


def subcommands(name: str, help: str) -> typer.Typer:
    """A command family under ``produce NAME`` (``produce models ...``), with the app's help conventions."""
    family = typer.Typer(cls=_ProduceSubGroup, help=help, no_args_is_help=True, rich_markup_mode="rich")
    app.add_typer(family, name=name)
    return family


def main() -> None:
    """Console-script entry point."""
    app(prog_name="produce")


def _iter_commands(group: Command, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _iter_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def all_commands() -> list[tuple[tuple[str, ...], Command]]:
    """Every command of the app as ``(words, command)``, ``(("models", "list"), ...)`` for a family's: what the help
    and --json tests walk, so a new command is covered without being listed."""
    return list(_iter_commands(typer.main.get_command(app)))
