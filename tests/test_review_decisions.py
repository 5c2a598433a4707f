"""The review page's writers on hand-written edit files: only the decided value changes, comments and order stay,
and what would not build is refused before anything is written. Read back with tomllib and the pipeline's own
loaders."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from keylime_prod.config import (
    SpeakerNames,
    list_episodes,
    load_corrections,
    load_cut_decisions,
    load_episode,
    load_speaker_names,
    tomllib,
)
from keylime_prod.edit.artefact import Candidate, Cuts
from keylime_prod.errors import ConfigError, ReviewError
from keylime_prod.review import add_correction, move_chapter, set_cut, set_speaker_name
from keylime_prod.review.server import require_extra
from keylime_prod.transcript.artefact import TimedWord

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """The demo's configs, copied so they can be edited (recordings and assets linked)."""
    cfg = tmp_path / "configs"
    (cfg / "episodes").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "show.toml", cfg / "show.toml")
    shutil.copy(ROOT / "configs" / "episodes" / "episode-258.toml", cfg / "episodes" / "episode-258.toml")
    for name in ("assets", "raw"):
        (cfg / name).symlink_to(ROOT / "configs" / name)
    return cfg


def _words(text: str, start: float = 10.0) -> list[TimedWord]:
    return [TimedWord(start + i * 0.5, start + i * 0.5 + 0.4, w, 0.5, "Speaker 1") for i, w in enumerate(text.split())]


def test_a_correction_is_appended_and_the_hand_written_ones_stay(configs: Path) -> None:
    path = configs / "episodes" / "episode-258.corrections.toml"
    hand = '# my fixes\n[[replace]]\nheard = "medical teacher"  # the journal\nmeant = "Medical Teacher"\n'
    path.write_text(hand, "utf-8")
    words = _words("in medical teacher Klasen and Lingarm, wrote")
    add_correction(configs, "episode-258", words, 12.5, "Lingarm,", 'Lingard "LA"')
    text = path.read_text("utf-8")
    assert text.startswith(hand)
    data = load_corrections(configs, "episode-258")
    assert [(c.at, c.heard, c.meant) for c in data.corrections] == [(12.5, "Lingarm,", 'Lingard "LA"')]
    assert tomllib.loads(text)["corrections"][0]["at"] == "00:00:12.500"
    # A correction that would not apply (not said there) is refused and nothing is written.
    with pytest.raises(ConfigError, match="is not heard within 2 s"):
        add_correction(configs, "episode-258", words, 30.0, "Lingarm", "Lingard")
    assert path.read_text("utf-8") == text


def test_cut_choices_move_ids_between_accept_and_reject(configs: Path) -> None:
    cuts = Cuts("x.flac", 60.0, tuple(
        Candidate(f"pause-000{i}000", "pause", float(i), i + 0.5, "propose", 0.9, "", "") for i in (1, 2, 3)
    ), 0.5, 0.7)  # fmt: skip
    path = configs / "episodes" / "episode-258.cuts.toml"
    path.write_text('# decided on Monday\naccept = ["pause-0001000"]  # keep short\n\n[[cut]]\nstart = "00:41.2"\n'
                    'end = 42.0\nnote = "cough"\n', "utf-8")  # fmt: skip
    set_cut(configs, "episode-258", cuts, "pause-0001000", "keep")
    set_cut(configs, "episode-258", cuts, "pause-0002000", "cut")
    text = path.read_text("utf-8")
    assert text.startswith("# decided on Monday\naccept = [")
    assert '"pause-0002000"]  # keep short\n' in text and 'note = "cough"' in text
    d = load_cut_decisions(path)
    assert (d.accept, d.reject, len(d.cut)) == (("pause-0002000",), ("pause-0001000",), 1)
    set_cut(configs, "episode-258", cuts, "pause-0001000", "open")
    assert load_cut_decisions(path).reject == ()
    with pytest.raises(ReviewError, match="no cut candidate 'retake-1'"):
        set_cut(configs, "episode-258", cuts, "retake-1", "cut")
    # A new file starts with a line that says what it is.
    path.unlink()
    set_cut(configs, "episode-258", cuts, "pause-0003000", "keep")
    assert path.read_text("utf-8").startswith("# The producer's word on the cut candidates")
    assert load_cut_decisions(path).reject == ("pause-0003000",)


def test_speaker_names_file(configs: Path) -> None:
    path = configs / "episodes" / "episode-258.speakers.toml"
    set_speaker_name(configs, "episode-258", "Speaker 2", "Jason Frank")
    set_speaker_name(configs, "episode-258", "Lara Varpio", "Lara Varpio, PhD")
    assert load_speaker_names(configs, "episode-258") == SpeakerNames(
        names={"Speaker 2": "Jason Frank", "Lara Varpio": "Lara Varpio, PhD"}
    )
    assert '"Speaker 2" = "Jason Frank"\n' in path.read_text("utf-8")
    set_speaker_name(configs, "episode-258", "Speaker 2", "Speaker 2")  # back to the label: no entry
    assert load_speaker_names(configs, "episode-258").names == {"Lara Varpio": "Lara Varpio, PhD"}
    assert list_episodes(configs) == ["episode-258"]
    path.write_text('[names]\n"Speaker 3" = ""\n', "utf-8")
    with pytest.raises(ConfigError, match=r"speakers\.toml: .*may be empty"):
        load_speaker_names(configs, "episode-258")


def test_a_chapter_move_changes_only_its_start(configs: Path) -> None:
    path = configs / "episodes" / "episode-258.toml"
    before = path.read_text("utf-8")
    move_chapter(configs, "episode-258", 1, 44.25)
    after = path.read_text("utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [('start = "00:42.2"', 'start = "00:44.2"')] or changed == [
        ('start = "00:42.2"', 'start = "00:44.3"')
    ], changed
    assert [c.start for c in load_episode(configs, "episode-258").chapters][1] == pytest.approx(44.2, abs=0.06)
    # Out of order is refused by the config's own validation, and nothing is written.
    with pytest.raises(ConfigError, match="increasing order"):
        move_chapter(configs, "episode-258", 1, 120.0)
    assert path.read_text("utf-8") == after
    with pytest.raises(ReviewError, match="no chapter 9"):
        move_chapter(configs, "episode-258", 8, 1.0)


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    with pytest.raises(ReviewError) as e:
        require_extra()
    assert str(e.value) == (
        "the review page needs Starlette and uvicorn (uvicorn is missing) (pip install 'keylime-prod[review]')"
    )
