"""The library's public names (``keylime_prod.__all__``) and the README's five-line library example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keylime_prod

REPO = Path(__file__).resolve().parent.parent


def test_every_public_name_resolves_and_the_stage_functions_are_there() -> None:
    for name in keylime_prod.__all__:
        assert getattr(keylime_prod, name) is not None, name
    from keylime_prod import audio, chapters, notes, pipeline, tags, transcript

    assert keylime_prod.master is audio.master and keylime_prod.transcribe is transcript.transcribe
    assert keylime_prod.build_chapters is chapters.build_chapters and keylime_prod.write_notes is notes.write_notes
    assert keylime_prod.write_tags is tags.write_tags and keylime_prod.run_episode is pipeline.run_episode


def test_importing_the_package_stays_cheap() -> None:
    heavy = "('numpy', 'boto3', 'faster_whisper')"
    code = f"import sys, keylime_prod; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_readme_shows_library_use_in_five_lines() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    block = re.search(r"### Library use\n.*?```python\n(.*?)```", readme, flags=re.S)
    assert block, "README has no library example"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) <= 5 and "run_episode" in block.group(1)
    compile(block.group(1), "README.md", "exec")  # it is Python
    names = re.findall(r"from keylime_prod import (.+)", block.group(1))[0].split(", ")
    assert all(n in keylime_prod.__all__ for n in names)
