"""The scheduled publishing workflow: GitHub's workflow schema (check-jsonschema, offline), a security audit
(zizmor --offline), and what it must do (cron + manual dispatch, the README's install command, secrets, --due), with
least privilege: installed from the hashed lock only, the bucket keys only on the publishing step (docs/security.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "publish.yml"


def tool(name: str) -> str:
    """A console script installed beside the interpreter (the test extra), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not installed: pip install -e '.[test]'")
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def load(path: Path = WORKFLOW) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_valid_against_githubs_workflow_schema() -> None:
    p = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    assert p.returncode == 0, p.stdout + p.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # Control: the same check fails on a job without runs-on, so the test above is not vacuous.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: echo\n")
    p = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad))
    assert p.returncode != 0


def test_zizmor_offline_finds_nothing_even_as_auditor() -> None:
    p = run(tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(WORKFLOW))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings" in p.stdout + p.stderr


def test_zizmor_catches_the_usual_mistakes(tmp_path: Path) -> None:
    # Control: unpinned action, persisted git credentials, broad permissions are all reported.
    text = WORKFLOW.read_text()
    text = re.sub(r"actions/checkout@[0-9a-f]{40} # v\S+", "actions/checkout@v4", text)
    text = text.replace("          persist-credentials: false\n", "          fetch-depth: 1\n")
    text = text.replace("permissions:\n  contents: read\n", "permissions: write-all\n")
    bad = tmp_path / ".github" / "workflows" / "publish.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    p = run(tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(bad))
    assert p.returncode != 0
    out = p.stdout + p.stderr
    for audit in ("unpinned-uses", "artipacked", "excessive-permissions"):
        assert audit in out, out


def test_schedule_dispatch_and_least_privilege() -> None:
    wf = load()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    crons = [s["cron"] for s in on["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert "workflow_dispatch" in on
    assert wf["permissions"] == {"contents": "read"}
    assert wf["concurrency"]["cancel-in-progress"] is False
    for job in wf["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_installs_with_the_readme_command_and_publishes_due_episodes_from_secrets() -> None:
    steps = next(iter(load()["jobs"].values()))["steps"]
    install = next(s for s in steps if "pip install" in s.get("run", ""))["run"].strip()
    readme = (REPO / "README.md").read_text()
    assert f"{install} && .venv/bin/produce episode-258" in readme, "the workflow must install as the README says"
    publish = next(s for s in steps if "produce" in s.get("run", "") and "publish" in s.get("run", ""))
    assert re.search(r"args=\(publish --due --json\)", publish["run"])
    env = publish["env"]
    for var in (
        "KEYLIME_S3_ENDPOINT_URL",
        "KEYLIME_S3_BUCKET",
        "KEYLIME_S3_PREFIX",
        "KEYLIME_PUBLIC_BASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert env[var] == "${{ secrets." + var + " }}"
    # No expression is expanded inside a shell script (template injection): inputs reach it through env.
    assert "${{" not in publish["run"]


def test_verifies_the_live_feed_after_publishing_with_the_guid_record_cached() -> None:
    steps = next(iter(load()["jobs"].values()))["steps"]
    names = [s.get("name", "") for s in steps]
    publish = next(i for i, s in enumerate(steps) if "args=(publish --due --json)" in s.get("run", ""))
    check = next(i for i, s in enumerate(steps) if "produce verify" in s.get("run", ""))
    assert check > publish, names  # after publishing, never before
    run_ = steps[check]["run"]
    state = re.search(r"produce verify --all --json --state (\S+)", run_)
    assert state, run_
    assert 'exit "$status"' in run_  # a problem fails the run, after the summary is written
    assert "${{" not in run_
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == state.group(1)
    assert steps.index(cache) < check


# ----------------------------------------------------------------------------------------------- least privilege

LOCK = "requirements/publish.txt"


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a parsed YAML tree, keys included, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", str(k)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _is_publish(step: dict[str, Any]) -> bool:
    return "args=(publish --due --json)" in step.get("run", "")


def privilege_problems(wf: Any) -> list[str]:
    """What breaks the rules of docs/security.md for the workflow; empty when it keeps them."""
    problems = []
    # The secrets (bucket keys and all) appear only in the env of the one step that publishes.
    for where, text in _strings({k: v for k, v in wf.items() if k != "jobs"}, "workflow"):
        if "secrets." in text:
            problems.append(f"{where} reads a secret")
    for job_id, job in wf["jobs"].items():
        for where, text in _strings({k: v for k, v in job.items() if k != "steps"}, f"jobs.{job_id}"):
            if "secrets." in text:
                problems.append(f"{where} reads a secret")
        for i, step in enumerate(job["steps"]):
            allowed = step.get("env", {}) if _is_publish(step) else {}
            rest = {k: v for k, v in step.items() if not (k == "env" and allowed)}
            for where, text in _strings(rest, f"jobs.{job_id}.steps[{i}]"):
                if "secrets." in text:
                    problems.append(f"{where} reads a secret")
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    # Every pip install is either the hashed lock or the project itself without dependencies; nothing editable.
    for step in steps:
        for cmd in re.split(r"&&|;|\n", step.get("run", "")):
            if "pip install" not in cmd:
                continue
            if re.search(r"(^|\s)(-e|--editable)(\s|$)", cmd):
                problems.append(f"editable install on the runner: {cmd.strip()}")
            if f"--require-hashes -r {LOCK}" not in cmd and "--no-deps" not in cmd:
                problems.append(f"install outside the hashed lock: {cmd.strip()}")
    if not any(f"--require-hashes -r {LOCK}" in s.get("run", "") for s in steps):
        problems.append(f"nothing installs {LOCK} with --require-hashes")
    # pip's cache is keyed by the lock's hash.
    setup = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    if not any(
        s.get("with", {}).get("cache") == "pip" and s["with"].get("cache-dependency-path") == LOCK for s in setup
    ):
        problems.append(f"no pip cache keyed by {LOCK}")
    return problems


def test_least_privilege_install_and_secrets() -> None:
    assert privilege_problems(load()) == []


def test_least_privilege_check_catches_the_usual_mistakes() -> None:
    # Control: keys on the job, an editable unpinned install and no lock-keyed cache are each reported.
    wf = load()
    job = next(iter(wf["jobs"].values()))
    publish = next(s for s in job["steps"] if _is_publish(s))
    job["env"] = {"AWS_SECRET_ACCESS_KEY": publish["env"]["AWS_SECRET_ACCESS_KEY"]}
    verify = next(s for s in job["steps"] if "produce verify" in s.get("run", ""))
    verify["env"] = {"AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}"}
    install = next(s for s in job["steps"] if "pip install" in s.get("run", ""))
    install["run"] = "python3 -m venv .venv && .venv/bin/pip install -e ."
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    del setup["with"]["cache-dependency-path"]
    problems = privilege_problems(wf)
    assert any(p.startswith(f"jobs.{next(iter(wf['jobs']))}.env.AWS_SECRET_ACCESS_KEY reads") for p in problems)
    assert any(".env.AWS_ACCESS_KEY_ID reads a secret" in p and "steps[" in p for p in problems)
    assert "editable install on the runner: .venv/bin/pip install -e ." in problems
    assert "install outside the hashed lock: .venv/bin/pip install -e ." in problems
    assert f"nothing installs {LOCK} with --require-hashes" in problems
    assert f"no pip cache keyed by {LOCK}" in problems
    assert len(problems) == 6, problems
