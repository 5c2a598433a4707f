"""Who speaks when in one mixed recording (keylime_prod/speakers, docs/speakers.md), on real voices.

``tests/data/speakers`` (scripts/make_speaker_media.py): three real readers taking turns in one file, two of them the
show's enrolled hosts and the third the episode's guest; the same turns with a loud host and a quiet guest; and the
real two-person telephone call pyannote-audio ships, with its reference turns (overlap included). Judged by the
truth's turn times, Whisper's own words (faster-whisper) and ffmpeg's ebur128 on the published MP3.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keylime_prod import ffmpeg
from keylime_prod.audio.artefact import Master
from keylime_prod.config import ConfigError, SpeakerSettings, load_settings, load_speaker_names
from keylime_prod.errors import SpeakersError
from keylime_prod.pipeline import RunResult, read_state, run_episode
from keylime_prod.speakers import Turns, Voice, names_of, read_turns
from keylime_prod.speakers.turns import der
from keylime_prod.transcript import TimedWord, by_voice

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
DATA = REPO / "tests" / "data" / "speakers"
TRUTH = json.loads((DATA / "speakers.json").read_text())
HOSTS = {name: DATA / f for name, f in TRUTH["enrolment"].items()}
GUEST = TRUTH["people"]["jfk"]["name"]


# ------------------------------------------------------------------------------------------------ pure parts


def test_names_hosts_by_voice_then_guests_then_the_producer() -> None:
    turns = Turns(voices=(Voice("Speaker 1", 30.0, "Avery Lane", 0.94), Voice("Speaker 2", 9.0, None, 0.5),
                          Voice("Speaker 3", 4.0, None, 0.4)))  # fmt: skip
    # Two voices left and one guest: nobody can say which is the guest, both stay unnamed and the report asks.
    n = names_of(turns, ["Jason Frank"], {})
    assert n.names == {"Speaker 1": "Avery Lane", "Speaker 2": "Speaker 2", "Speaker 3": "Speaker 3"}
    assert n.unnamed == ("Speaker 2", "Speaker 3")
    # As many guests as voices left: the guests' names, in the order they first speak.
    n = names_of(turns, ["Jason Frank", "Mia Wong"], {})
    assert (n.names["Speaker 2"], n.how["Speaker 2"]) == ("Jason Frank", "guest")
    # The producer's [names] have the last word, by label or by the name a voice was given.
    n = names_of(turns, ["Jason Frank", "Mia Wong"], {"Speaker 3": "Noor Ali", "Avery Lane": "Blair Moss"})
    assert n.names == {"Speaker 1": "Blair Moss", "Speaker 2": "Jason Frank", "Speaker 3": "Noor Ali"}
    assert n.unnamed == ()


def test_words_take_the_name_of_the_turn_they_fall_in() -> None:
    words = [TimedWord(0.1, 0.4, "Hello", 0.9, "Host"), TimedWord(2.0, 2.3, "there", 0.9, "Host"),
             TimedWord(2.9, 3.2, "Hi", 0.9, "Host"), TimedWord(9.0, 9.2, "far", 0.9, "Host"),
             TimedWord(3.0, 3.5, "Legal", 1.0, "Disclaimer")]  # fmt: skip
    turns = [("Avery Lane", 0.0, 2.5), ("Jason Frank", 2.8, 4.0), ("Avery Lane", 3.1, 3.15)]
    got = [w.speaker for w in by_voice(words, turns)]
    # The overlap goes to the turn covering more of the word; far from every turn and the disclaimer keep theirs.
    assert got == ["Avery Lane", "Avery Lane", "Jason Frank", "Host", "Disclaimer"]


def test_der_counts_missed_false_alarm_and_confusion() -> None:
    ref = [("a", 0.0, 10.0), ("b", 10.0, 20.0)]
    assert der(ref, [("x", 0.0, 10.0), ("y", 10.0, 20.0)])["der"] == pytest.approx(0.0, abs=1e-3)
    d = der(ref, [("x", 0.0, 15.0), ("y", 15.0, 18.0)])
    assert d["confusion"] == pytest.approx(0.25, abs=0.01) and d["missed"] == pytest.approx(0.1, abs=0.01)


def test_speaker_names_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "episodes").mkdir()
    (tmp_path / "episodes" / "ep-1.speakers.toml").write_text('[names]\n"Speaker 2" = "Jason Frank"\n')
    assert load_speaker_names(tmp_path, "ep-1").names == {"Speaker 2": "Jason Frank"}
    (tmp_path / "episodes" / "ep-1.speakers.toml").write_text('[names]\n"Speaker 2" = ""\n')
    with pytest.raises(ConfigError, match=r"ep-1\.speakers\.toml"):
        load_speaker_names(tmp_path, "ep-1")
    with pytest.raises(ValueError, match="count"):
        SpeakerSettings(count=0)


# ------------------------------------------------------------------------------------- the diarizer on real voices


@pytest.mark.torch
def test_three_voices_found_and_the_hosts_known_by_voice() -> None:
    from keylime_prod.speakers import diarize

    turns = diarize([DATA / "three_voices.flac"], SpeakerSettings(diarize=True, voices=HOSTS))
    assert len(turns.voices) == 3, turns.voices  # the number of voices estimated, not given
    hosts = sorted(v.host for v in turns.voices if v.host)
    assert hosts == sorted(HOSTS), turns.voices
    names = names_of(turns, [GUEST], {}).names
    ref = [(t["speaker"], t["start"], t["end"]) for t in TRUTH["three_voices"]["turns"]]
    hyp = [(names[t.label], t.start, t.end) for t in turns.turns]
    d = der(ref, hyp)
    print("three voices:", {k: round(v, 3) for k, v in d.items()})
    assert d["confusion"] <= 0.05, d


@pytest.mark.whisper
@pytest.mark.torch
def test_three_voices_at_equal_level_words_named() -> None:
    """The goal (docs/speakers.md): three real voices at equal level, two hosts enrolled, >= 90 % of Whisper's words
    under the right name (measured 136 of 137 by bench/speakers.py)."""
    from keylime_prod.config import WhisperSettings
    from keylime_prod.speakers import diarize
    from keylime_prod.transcript import recognise

    audio = DATA / "three_voices.flac"
    turns = diarize([audio], SpeakerSettings(diarize=True, voices=HOSTS))
    names = names_of(turns, [GUEST], {}).names
    heard = recognise(audio, WhisperSettings(), speaker="Host")
    words = by_voice(heard.words, [(names[t.label], t.start, t.end) for t in turns.turns])
    truth = TRUTH["three_voices"]["turns"]
    right = sum(
        w.speaker in {t["speaker"] for t in truth if t["start"] - 0.25 <= (w.start + w.end) / 2 <= t["end"] + 0.25}
        for w in words
    )
    print(f"three voices, equal level: {right}/{len(words)} words under the right name")
    assert len(words) >= 120 and right / len(words) >= 0.90


@pytest.mark.torch
def test_real_conversation_with_overlap_der() -> None:
    from keylime_prod.speakers import diarize

    turns = diarize([DATA / "conversation.flac"], SpeakerSettings(diarize=True))
    ref = [(t["speaker"], t["start"], t["end"]) for t in TRUTH["conversation"]["turns"]]
    d = der(ref, [(t.label, t.start, t.end) for t in turns.turns])
    print("conversation:", len(turns.voices), "voices,", {k: round(v, 3) for k, v in d.items()})
    # Two women on a telephone line, 8 kHz, a back-channel over a turn (docs/speakers.md): measured 0.17-0.18.
    assert len(turns.voices) == 2 and d["der"] <= 0.30, d


@pytest.mark.torch
def test_multitrack_hard_mixed_down_to_one_file(tmp_path: Path) -> None:
    """The two tracks of tests/data/multitrack-hard (Diane quiet, Sheila 13 LU louder, each in the other's
    microphone) summed into one recording: the voices are told apart as the tracks tell them."""
    from keylime_prod.speakers import diarize

    hard = REPO / "tests" / "data" / "multitrack-hard"
    session = json.loads((hard / "session.json").read_text())
    rate = int(session["rate"])
    tracks = []
    for t in session["tracks"]:
        raw = subprocess.run(ffmpeg.command(ffmpeg.decode_args(hard / t["file"], sample_rate=rate, channels=1)),
                             check=True, capture_output=True).stdout  # fmt: skip
        tracks.append(np.r_[np.zeros(round(t["start_s"] * rate), np.float32), np.frombuffer(raw, "<f4")])
    mix = np.zeros(max(len(x) for x in tracks), np.float32)
    for x in tracks:
        mix[: len(x)] += x
    dest = tmp_path / "mixdown.flac"
    subprocess.run([ffmpeg.binary(), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-", str(dest)],
                   input=mix.tobytes(), check=True)  # fmt: skip
    turns = diarize([dest], SpeakerSettings(diarize=True))
    ref = [(t["speaker"], t["start"], t["end"]) for t in session["turns"]]
    d = der(ref, [(t.label, t.start, t.end) for t in turns.turns])
    print("multitrack-hard mixed down:", len(turns.voices), "voices,", {k: round(v, 3) for k, v in d.items()})
    # Measured: no confusion; the false alarm is the VAD's padding around turns the truth times word by word.
    assert len(turns.voices) == 2 and d["confusion"] <= 0.05 and d["der"] <= 0.2, d


@pytest.mark.torch
def test_a_missing_voice_sample_names_the_field(tmp_path: Path) -> None:
    from keylime_prod.speakers import diarize

    with pytest.raises(SpeakersError, match=r"speakers\.voices\.Ann: the voice sample is missing"):
        diarize([DATA / "conversation.flac"], SpeakerSettings(diarize=True, voices={"Ann": tmp_path / "no.flac"}))


# ------------------------------------------------------------------------------------------- through the pipeline


def _configs(root: Path, recording: Path) -> Path:
    configs = root / "configs"
    (configs / "episodes").mkdir(parents=True)
    (configs / "assets").symlink_to(CONFIGS / "assets")
    voices = "".join(f'"{name}" = "{path}"\n' for name, path in HOSTS.items())
    (configs / "show.toml").write_text(
        (CONFIGS / "show.toml").read_text() + f"\n[speakers]\ndiarize = true\n[speakers.voices]\n{voices}"
    )
    hosts = "".join(f'[[hosts]]\nname = "{name}"\n' for name in HOSTS)
    (configs / "episodes" / "sp.toml").write_text(
        f'number = 1\ntitle = "Sonnets and sense"\npublish_date = 2020-01-01\nsummary = "s"\n'
        f'recordings = ["{recording}"]\n{hosts}[[guests]]\nname = "{GUEST}"\n'
    )
    return configs


@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """``uneven_voices.flac`` (a loud host, a quieter one and a guest 16 LU under the first) through the pipeline
    up to the transcript, the two hosts enrolled by voice and the guest named in the episode."""
    root = tmp_path_factory.mktemp("speakers")
    configs = _configs(root, DATA / "uneven_voices.flac")
    return run_episode(load_settings(configs, build_root=root / "build"), "sp", upto="transcribe"), configs


def _truth_turns(master: Master) -> list[tuple[str, float, float]]:
    return [(t["speaker"], master.body_to_episode(t["start"]), master.body_to_episode(t["end"]))
            for t in TRUTH["uneven_voices"]["turns"]]  # fmt: skip


@pytest.mark.whisper
@pytest.mark.torch
def test_words_carry_the_right_name(uneven: tuple[RunResult, Path]) -> None:
    res, _ = uneven
    master: Master = res.artefacts["master"]
    words = json.loads((res.build_dir / "words.json").read_text())["words"]
    words = [w for w in words if master.body.start <= w["start"] < master.body.end]
    truth = _truth_turns(master)
    right = 0
    for w in words:
        mid = (w["start"] + w["end"]) / 2
        right += w["speaker"] in {sp for sp, a, b in truth if a - 0.25 <= mid <= b + 0.25}
    share = right / len(words)
    print(f"three voices: {right}/{len(words)} words under the right name ({100 * share:.1f}%)")
    assert len(words) >= 120 and share >= 0.90
    # The names reach every format: WebVTT voice tags and Podcasting 2.0 JSON.
    vtt = (res.build_dir / "transcript.vtt").read_text()
    p20 = json.loads((res.build_dir / "transcript.json").read_text())
    for name in (*HOSTS, GUEST):
        assert f"<v {name}>" in vtt
        assert any(seg.get("speaker") == name for seg in p20["segments"])


def _decoded(mp3: Path, sr: int) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg.binary(), "-v", "error", "-i", str(mp3), "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, dtype="<f4").astype(np.float64)


def _ebur128_of(y: np.ndarray, sr: int, tmp: Path) -> float:
    wav = tmp / "turns.wav"
    subprocess.run(
        [ffmpeg.binary(), "-v", "error", "-y", "-f", "f32le", "-ar", str(sr), "-ac", "1", "-i", "-", str(wav)],
        input=y.astype("<f4").tobytes(), check=True,
    )  # fmt: skip
    return ffmpeg.measure_ebur128(wav).integrated_lufs


@pytest.mark.whisper
@pytest.mark.torch
def test_each_speaker_levelled_within_1_5_lu_on_the_mp3(uneven: tuple[RunResult, Path], tmp_path: Path) -> None:
    res, _ = uneven
    master: Master = res.artefacts["master"]
    sr = 44100
    y = _decoded(master.mp3, sr)
    cuts: dict[str, list[np.ndarray]] = {}
    for speaker, a, b in _truth_turns(master):
        cuts.setdefault(speaker, []).append(y[int(a * sr) : int(b * sr)])
    loud = {sp: round(_ebur128_of(np.concatenate(c), sr, tmp_path), 2) for sp, c in cuts.items()}
    print("per speaker on the MP3 (LUFS):", loud, "raw:", TRUTH["uneven_voices"]["lufs"])
    assert max(loud.values()) - min(loud.values()) <= 1.5, loud
    # master.json records each speaker's level before and after.
    doc = json.loads(master.report.read_text())
    figures = doc["details"]["parts"][0]["leveler"]["speakers"]
    assert len(figures) == 3 and all({"before_lufs", "after_lufs"} <= set(f) for f in figures.values()), figures
    before = [f["before_lufs"] for f in figures.values()]
    assert max(before) - min(before) >= 10.0  # the raw file: 16 LU between the loud host and the guest


@pytest.mark.whisper
@pytest.mark.torch
def test_a_name_given_renders_again_without_diarizing_or_whisper(uneven: tuple[RunResult, Path]) -> None:
    res, configs = uneven
    turns = read_turns(res.build_dir / "turns.json")
    guest_label = next(v.label for v in turns.voices if not v.host)
    (configs / "episodes" / "sp.speakers.toml").write_text(f'[names]\n"{guest_label}" = "Jack Kennedy"\n')
    state = read_state(res.build_dir / "state.json")
    again = run_episode(load_settings(configs, build_root=res.build_dir.parent), "sp", upto="transcribe")
    ran = {s.name: s.cached for s in again.stages}
    assert ran["speakers"] and ran["master"] and ran["recognise"] and not ran["transcribe"], ran
    assert read_state(res.build_dir / "state.json")["recognise"] == state["recognise"]
    assert "<v Jack Kennedy>" in (res.build_dir / "transcript.vtt").read_text()
    assert f"<v {GUEST}>" not in (res.build_dir / "transcript.vtt").read_text()


def test_each_speaker_gets_one_gain_towards_the_same_loudness() -> None:
    from keylime_prod.audio.loudness import integrated_from_energy
    from keylime_prod.audio.speakers import level, per_recording
    from keylime_prod.config import LevelerSettings

    # 10 ms K-weighted energies: a host at -18 LUFS and a guest at -32, taking 4 s turns with 0.5 s pauses, the
    # guest's turns short of the stretch leveler's 10 s window so only the speakers' own levels tell them apart.
    rng = np.random.default_rng(1)
    energy, mask, turns, t = [], [], [], 0.0
    for i in range(10):
        who, lufs = ("host", -18.0) if i % 2 == 0 else ("guest", -32.0)
        e = 10 ** ((lufs + 0.691) / 10) * rng.uniform(0.5, 1.5, 400)
        energy += [e, np.full(50, 1e-9)]
        mask += [np.ones(400, bool), np.zeros(50, bool)]
        turns.append((who, t, t + 4.0))
        t += 4.5
    k, m = np.concatenate(energy), np.concatenate(mask)
    lev, figures = level(k, m, LevelerSettings(), turns)
    assert lev.curve_db is not None
    after = k * 10 ** (lev.curve_db / 10)
    blocks = {w: np.zeros(len(k), bool) for w in ("host", "guest")}
    for w, a, b in turns:
        blocks[w][int(a * 100) : int(b * 100)] = True
    loud = {w: integrated_from_energy(after[b]) for w, b in blocks.items()}
    assert abs(loud["host"] - loud["guest"]) <= 1.0, loud
    assert figures["guest"]["before_lufs"] == pytest.approx(-32.0, abs=0.5)
    assert abs(figures["host"]["after_lufs"] - figures["guest"]["after_lufs"]) <= 1.0, figures
    # Turns on the recordings laid end to end, as each recording's own.
    assert per_recording([("a", 1.0, 2.0), ("b", 9.0, 11.0)], [10.0, 5.0]) == [
        [("a", 1.0, 2.0), ("b", 9.0, 11.0)], [("b", -1.0, 1.0)],
    ]  # fmt: skip
