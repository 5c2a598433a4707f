"""Test tiers and the fixture plugins.

``pytest`` alone is the fast tier a contributor runs: it deselects the tests marked ``whisper`` (loads a Whisper
model), ``torch`` (imports torch), ``cluster`` (starts a Dask cluster) and ``s3`` (starts ``rclone serve s3``).
``pytest --all`` runs every test, as CI does (``.ci/run``); ``-m EXPR`` picks tests by marker as usual, and tests
named one by one (``path::name``) run whatever their markers.

Tests using the ``s3_server`` or ``dask_processes`` fixtures are marked by their fixture. A test without a marker
that loads a Whisper model in this process, starts rclone or imports torch or distributed fails and says which
marker it needs, so the fast tier stays fast as tests are added.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

pytest_plugins = [
    "support.fixtures.isolation",
    "support.fixtures.media",
    "support.fixtures.s3",
    "support.fixtures.archive",
]

#: Markers of the tests the fast tier leaves out: each pays for a heavy real part on every run.
HEAVY = ("whisper", "torch", "cluster", "s3")
#: Fixtures that start a heavy part, and the marker their tests get.
HEAVY_FIXTURES = {"s3_server": "s3", "dask_processes": "cluster"}
#: Modules whose import means a heavy part was used, and the marker that allows it.
HEAVY_MODULES = {"torch": "torch", "distributed": "cluster"}
_SLOW_LEFT_OUT = pytest.StashKey[int]()
_GUARD = pytest.StashKey[tuple[pytest.MonkeyPatch, set[str], set[str]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        default=False,
        help=f"run every test, the slow tier included (marked {', '.join(HEAVY)}); CI runs this",
    )


def _tier(config: pytest.Config) -> str:
    if config.getoption("--all"):
        return "all"
    if config.getoption("markexpr"):
        return "marker"
    # Tests named one by one (path::name) run whatever their marks: the caller asked for them.
    return "named" if any("::" in str(a) for a in config.args) else "fast"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in HEAVY_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    if _tier(config) != "fast":  # --all, or a -m expression chose the tests
        return
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(m) for m in HEAVY) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[_SLOW_LEFT_OUT] = len(drop)


def pytest_report_header(config: pytest.Config) -> str:
    return {
        "all": "tier: every test (--all)",
        "marker": f"tier: -m {config.getoption('markexpr')!r}",
        "named": "tier: the tests named",
        "fast": f"tier: fast, tests marked {', '.join(HEAVY)} deselected (--all runs them)",
    }[_tier(config)]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(_SLOW_LEFT_OUT, 0)
    if n:
        terminalreporter.write_line(f"fast tier: {n} tests marked {', '.join(HEAVY)} left out; --all runs them")


def _refuse(marker: str, what: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"this test {what}: mark it @pytest.mark.{marker} (the fast tier leaves those out)")

    return call


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test and the fixtures it sets up (module-scoped ones included): refuse the heavy parts it is not
    marked for."""
    marked = {m for m in HEAVY if item.get_closest_marker(m)}
    patch = pytest.MonkeyPatch()
    if "whisper" not in marked:
        from keylime_prod.transcript import engines

        for engine in (engines.FasterWhisperEngine, engines.OpenAIWhisperEngine):
            patch.setattr(engines, engine.__name__, _refuse("whisper", "loads a Whisper model"))
    if "s3" not in marked:
        from support.s3 import RcloneS3

        patch.setattr(RcloneS3, "start", _refuse("s3", "starts rclone serve s3"))
    item.stash[_GUARD] = (patch, marked, {m for m in HEAVY_MODULES if m in sys.modules})


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    guard = item.stash.get(_GUARD, None)
    if guard is None:
        return
    patch, marked, before = guard
    patch.undo()
    for module, marker in HEAVY_MODULES.items():
        if module not in before and module in sys.modules and marker not in marked:
            pytest.fail(f"this test imported {module}: mark it @pytest.mark.{marker} (the fast tier leaves those out)")
