"""Test tiers and the fixture plugins.

``pytest`` alone is the fast tier a contributor runs: it deselects the tests marked ``whisper`` (loads a Whisper
model), ``torch`` (imports torch), ``cluster`` (starts a Dask cluster) and ``s3`` (starts ``rclone serve s3``).
``pytest --all`` runs every test, as CI does (``.ci/run``); ``-m EXPR`` picks tests by marker as usual.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "support.fixtures.isolation",
    "support.fixtures.media",
    "support.fixtures.s3",
    "support.fixtures.archive",
]

#: Markers of the tests the fast tier leaves out: each pays for a heavy real part on every run.
HEAVY = ("whisper", "torch", "cluster", "s3")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        default=False,
        help=f"run every test, the slow tier included ({', '.join(HEAVY)}); CI runs this",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A -m expression or --all means the caller chose; otherwise keep only the fast tier.
    if config.getoption("--all") or config.getoption("markexpr"):
        return
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(m) for m in HEAVY) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--all"):
        return "tier: all tests (--all)"
    if config.getoption("markexpr"):
        return f"tier: -m {config.getoption('markexpr')!r}"
    return f"tier: fast (deselects {', '.join(HEAVY)}; --all runs everything)"
