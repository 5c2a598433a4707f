"""The edit stage inside the pipeline: cuts found on the master's words, applied to its audio, every timeline moved
through the one cut map. Real material (``scripts/make_edit_media.py``: the sonnet reading with a 3 s pause, three
hesitations and a retake put in), real ffmpeg, real Whisper (``tiny.en``); judged by ffmpeg's ``silencedetect``,
cross-correlation of the audio itself, a second Whisper run on the published MP3, jiwer and mutagen."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from mutagen.id3 import ID3
from support import configs, media
from typer.testing import CliRunner

from keylime_prod import edit, ffmpeg, transcript
from keylime_prod.audio.artefact import LoudnessCurves, Master
from keylime_prod.cli import app
from keylime_prod.config import Chapter, CutDecisions, WhisperSettings, load_settings
from keylime_prod.edit import apply_cuts, read_cuts
from keylime_prod.edit.apply import decode_master
from keylime_prod.edit.artefact import Candidate, CutMap, Edited
from keylime_prod.pipeline import run_episode
from keylime_prod.transcript.artefact import read_words

DATA = Path(__file__).parent / "data"
MATERIAL = DATA / "edit_sonnet.flac"
EVENTS = json.loads((DATA / "edit_media.json").read_text("utf-8"))["edit_sonnet.flac"]["events"]
TINY = WhisperSettings(model="tiny.en", compute_type="float32", threads=1)
RATE = 16000
CHAPTER_AT = 30.0  # raw time of the second chapter: after the inserted 3 s pause (24.16-27.16 s)

pytestmark = pytest.mark.whisper


def decode(path: Path) -> np.ndarray:
    out = ffmpeg.run(["-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"], where=path)
    return np.frombuffer(out.stdout, np.float32).copy()


def found_at(needle: np.ndarray, hay: np.ndarray, near: float, search: float = 1.0) -> float:
    """Where ``needle`` sits in ``hay`` (seconds), searched within ``search`` of ``near``: the peak of the
    normalised cross-correlation."""
    lo = max(0, int((near - search) * RATE))
    seg = hay[lo : int((near + search) * RATE) + len(needle)]
    corr = np.correlate(seg, needle, "valid")
    energy = np.sqrt(np.convolve(seg**2, np.ones(len(needle)), "valid")) * np.linalg.norm(needle) + 1e-12
    return (lo + int(np.argmax(corr / energy))) / RATE


def silences(path: Path, noise_db: float, min_s: float) -> list[tuple[float, float]]:
    """ffmpeg's own ``silencedetect``: every stretch under ``noise_db`` for at least ``min_s``."""
    proc = ffmpeg.run(["-i", str(path), "-af", f"silencedetect=noise={noise_db}dB:d={min_s}", "-f", "null", "-"])
    err = proc.stderr.decode()
    starts = [float(x) for x in re.findall(r"silence_start: ([\d.]+)", err)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", err)]
    return list(zip(starts, ends, strict=False))


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Episode 1 over the sonnet material, behind an intro, with a chapter after the inserted pause: built to the
    tag stage with the defaults (pauses cut, the rest proposed), then again with every proposal accepted."""
    tmp = tmp_path_factory.mktemp("edit-pipeline")
    cfg = tmp / "configs"
    intro = media.tone(tmp / "intro.mp3", 330, 3.0, -24.0)
    show = configs.show_config(assets={"intro": intro}, audio={"denoise": {"mode": "off"}}, whisper=TINY)
    configs.write_show(cfg, show)
    chapters = (Chapter(title="Opening", start=0.0), Chapter(title="After the pause", start=CHAPTER_AT))
    configs.write_episode(cfg, configs.episode_config([MATERIAL], chapters=chapters))
    first = run_episode(load_settings(cfg, tmp / "build"), "ep-1", upto=("transcribe", "tag"))
    layout = load_settings(cfg, tmp / "build").layout("ep-1")
    before = {
        "edited": first.get(Edited),
        "words": read_words(layout.words_json),
        "chapters": json.loads(layout.chapters_json.read_text("utf-8")),
    }
    cuts = read_cuts(layout.cuts_json)
    proposed = [c.id for c in cuts.candidates if c.action == "propose"]
    (cfg / "episodes" / "ep-1.cuts.toml").write_text(f"accept = {json.dumps(proposed)}\n", "utf-8")
    second = run_episode(load_settings(cfg, tmp / "build"), "ep-1", upto=("transcribe", "tag"))
    return {"cfg": cfg, "tmp": tmp, "layout": layout, "first": first, "second": second, "before": before,
            "cuts": cuts}  # fmt: skip


def test_accepting_a_cut_edits_again_without_running_whisper(build: dict[str, Any]) -> None:
    cached = {s.name: s.cached for s in build["second"].stages}
    assert cached["master"] and cached["recognise"], cached  # Whisper did not run again
    assert not cached["edit"] and not cached["transcribe"] and not cached["chapters"] and not cached["tag"], cached
    first, second = build["before"]["edited"], build["second"].get(Edited)
    assert second.map.removed > first.map.removed + 1.0  # the hesitations and the retake went too
    assert {a.kind for a in second.applied} == {"pause", "hesitation", "retake"}
    # What Whisper wrote over an applied hesitation or first attempt ("deserve a", "of fat", "Pity the world,") is
    # gone from words.json: no word of that text where the cut map puts the join.
    layout = build["layout"]
    heard = transcript.Heard.load(layout.heard_json).words
    kept = read_words(layout.words_json)
    for x in (x for x in second.applied if x.kind != "pause"):
        gone = [w for w in heard if x.at_start <= (w.start + w.end) / 2 < x.at_end]
        assert gone, x
        join = second.map.time(x.at_start)
        for w in gone:
            assert not any(k.word == w.word and abs(k.start - join) < 0.05 for k in kept), (x, w)
    assert len(kept) == len(heard) - sum(1 for w in heard if not second.map.keeps(w.start, w.end))
    # The report's loudness curves are moved too: as many hops fewer as the cuts took out.
    before, after = LoudnessCurves.load(layout.loudness_json), LoudnessCurves.load(layout.edited_loudness_json)
    dropped = len(before.after.momentary) - len(after.after.momentary)
    # A cut drops the hops whose middle it covers: its length over the hop, rounded up or down.
    assert abs(dropped * before.hop_s - second.map.removed) < len(second.map.cuts) * before.hop_s


def test_pauses_over_two_seconds_are_shortened(build: dict[str, Any]) -> None:
    master: Master = build["first"].get(Master)
    edited: Edited = build["second"].get(Edited)
    body = master.body
    # Judged by ffmpeg's silencedetect, "silence" being as quiet as the pause put into the material (its loudest
    # sample, 3 dB up): the uncut master has it, the cut one has no such stretch of 2 s inside the body.
    pause = next(e for e in EVENTS if e["kind"] == "pause")
    a, b = master.body_to_episode(pause["start"] + 0.3), master.body_to_episode(pause["end"] - 0.3)
    quiet = 20 * np.log10(np.max(np.abs(decode(master.mp3)[int(a * RATE) : int(b * RATE)]))) + 3
    long_before = [s for s in silences(master.mp3, quiet, 2.0) if body.start < s[0] and s[1] < body.end]
    assert long_before, "the material has no pause over 2 s to shorten"
    cut_body = edited.master.body
    long_after = [s for s in silences(edited.master.mp3, quiet, 2.0) if cut_body.start < s[0] and s[1] < cut_body.end]
    assert not long_after, long_after
    kept = [b - a for a, b in silences(edited.master.mp3, quiet, 0.5) if cut_body.start < a and b < cut_body.end]
    assert max(kept) >= 0.6  # shortened to about the natural pause, not closed up


def test_the_audio_after_each_cut_is_where_the_cut_map_says(build: dict[str, Any]) -> None:
    master: Master = build["first"].get(Master)
    edited: Edited = build["second"].get(Edited)
    old, new = decode(master.mp3), decode(edited.master.mp3)
    m = edited.map
    offsets = []
    body = master.body
    for t in np.arange(body.start + 0.5, body.end - 1.0, 2.0):
        if any(a - 0.6 < t < b + 0.1 for a, b in m.cuts):
            continue
        needle = old[int(t * RATE) : int((t + 0.5) * RATE)]
        if np.sqrt(np.mean(needle**2)) < 1e-3:
            continue  # room tone matches anywhere
        offsets.append(found_at(needle, new, m.time(t)) - m.time(t))
    assert len(offsets) >= 10
    assert max(abs(o) for o in offsets) < 0.005, offsets  # within a sample or two (the MP3's own framing)


def test_words_captions_and_a_phrase_stay_on_time(build: dict[str, Any]) -> None:
    """A second Whisper run on the published (tagged, cut) MP3 finds the words where words.json puts them."""
    layout = build["layout"]
    words = read_words(layout.words_json)
    tagged = layout.tagged_mp3
    heard = transcript.transcribe(tagged, TINY, build["tmp"] / "again")
    assert heard.words is not None
    again = read_words(heard.words)
    deltas = []
    for w in (w for w in words if len(w.word.strip(" ,.;:!?")) >= 5):
        same = [x for x in again if x.word.strip(" ,.;:!?").lower() == w.word.strip(" ,.;:!?").lower()]
        if same:
            deltas.append(min(abs(x.start - w.start) for x in same))
    assert len(deltas) >= 20
    assert float(np.median(deltas)) < 0.1 and float(np.percentile(deltas, 90)) < 0.25, sorted(deltas)
    # The retake's first attempt ("Pity the world, pity the world, or else") is gone from what is heard.
    text = " ".join(w.word for w in again).lower()
    before = " ".join(w.word for w in build["before"]["words"])
    assert text.count("the world") == before.lower().count("the world") - 1, text
    vtt = (layout.root / "transcript.vtt").read_text("utf-8")
    first_cue = re.search(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) -->", vtt)
    assert first_cue is not None
    h, mi, s, ms = (int(x) for x in first_cue.groups())
    assert abs(h * 3600 + mi * 60 + s + ms / 1000 - words[0].start) < 0.05
    # Whisper's text of the cut file is no further from the reading than the uncut file's (jiwer).
    reference = (DATA / "sonnet1_librivox.txt").read_text("utf-8")
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    wer_before = jiwer.wer(reference, before, reference_transform=norm, hypothesis_transform=norm)
    wer_after = jiwer.wer(reference, text, reference_transform=norm, hypothesis_transform=norm)
    assert wer_after <= wer_before + 0.01, (wer_before, wer_after)


def test_chapters_are_moved_through_the_cuts(build: dict[str, Any]) -> None:
    layout = build["layout"]
    master: Master = build["first"].get(Master)
    edited: Edited = build["second"].get(Edited)
    doc = json.loads(layout.chapters_json.read_text("utf-8"))
    mark = next(c for c in doc["chapters"] if c["title"] == "After the pause")
    expected = edited.map.time(master.body_to_episode(CHAPTER_AT))
    assert abs(mark["startTime"] - expected) < 0.002
    # The pause and the hesitation before it were taken out.
    assert mark["startTime"] < master.body_to_episode(CHAPTER_AT) - 3.0
    chap = next(f for f in ID3(layout.tagged_mp3).getall("CHAP") if f.sub_frames["TIT2"].text[0] == "After the pause")
    assert abs(chap.start_time / 1000 - mark["startTime"]) < 0.002
    # What is heard at the chapter in the published file is what was said at its raw time.
    old, new = decode(master.mp3), decode(layout.tagged_mp3)
    t = master.body_to_episode(CHAPTER_AT)
    at = found_at(old[int(t * RATE) : int((t + 0.6) * RATE)], new, mark["startTime"])
    assert abs(at - mark["startTime"]) < 0.01


def _join_checks(new: np.ndarray, at: float, tone_rms: float) -> dict[str, float]:
    j = int(at * RATE)
    near = new[j - int(0.01 * RATE) : j + int(0.01 * RATE)]
    around = np.r_[new[j - int(0.2 * RATE) : j - int(0.02 * RATE)], new[j + int(0.02 * RATE) : j + int(0.2 * RATE)]]
    return {
        "step": float(np.max(np.abs(np.diff(near)))),
        "normal_step": float(np.max(np.abs(np.diff(around)))),
        "rms_db": float(20 * np.log10(np.sqrt(np.mean(near**2)) / tone_rms)),
    }


def test_joins_make_no_click_and_no_digital_silence(build: dict[str, Any]) -> None:
    master: Master = build["first"].get(Master)
    edited: Edited = build["second"].get(Edited)
    old, new = decode(master.mp3), decode(edited.master.mp3)
    pause = next(a for a in edited.applied if a.kind == "pause")
    tone = old[int(pause.at_start * RATE) - int(0.3 * RATE) : int(pause.at_start * RATE)]
    tone_rms = float(np.sqrt(np.mean(tone**2)))
    # Room tone's own 20 ms windows (the span _join_checks measures) stray from its mean level: a join may sit in
    # one of its quiet moments (the splice looks for the quietest point), but not under the quietest of them.
    w = int(0.02 * RATE)
    own = 20 * np.log10(np.sqrt(np.mean(tone[: len(tone) // w * w].reshape(-1, w) ** 2, axis=1)) / tone_rms)
    for a in edited.applied:
        c = _join_checks(new, edited.map.time(a.at_start), tone_rms)
        # No sample step at the join over the steps of the signal either side of it (a click is one).
        assert c["step"] <= 1.2 * c["normal_step"], (a, c)
        if a.kind in ("pause", "hesitation"):
            # The join sits in room tone, at its level.
            assert float(own.min()) - 2.0 < c["rms_db"] < 6.0, (a, c, own.min())
    body = edited.master.body
    x = new[int(body.start * RATE) : int(body.end * RATE)]
    zero_runs = np.diff(np.flatnonzero(np.r_[True, x != 0, True])) - 1
    assert zero_runs.max() < int(0.001 * RATE)  # never a run of exact zeros (digital silence)


def test_mute_keeps_the_timeline_and_fills_with_room_tone(build: dict[str, Any], tmp_path: Path) -> None:
    master: Master = build["first"].get(Master)
    pause = next(c for c in build["cuts"].candidates if c.kind == "pause" and c.end - c.start > 1.5)
    muted = Candidate(pause.id, "hesitation", pause.start, pause.end, "mute", 1.0, "", "")
    out, m, applied = apply_cuts(master, [muted], tmp_path / "m.mp3", tmp_path / "master.json")
    assert m == CutMap(muted=((applied[0].at_start, applied[0].at_end),)) and m.time(40.0) == 40.0
    assert abs(out.duration - master.duration) < 0.03
    old, new = decode(master.mp3), decode(out.mp3)
    a, b = applied[0].at_start, applied[0].at_end
    orig = old[int(a * RATE) : int(b * RATE)]
    fill = new[int(a * RATE) : int(b * RATE)]
    level = 20 * np.log10(np.sqrt(np.mean(fill**2)) / np.sqrt(np.mean(orig**2)))
    assert abs(level) < 4, level  # room tone at the room's own level
    assert np.count_nonzero(fill == 0) < 20 and not np.any((fill[1:] == 0) & (fill[:-1] == 0))  # no digital silence
    rest = np.r_[old[: int(a * RATE) - 800], old[int(b * RATE) + 800 :]]
    rest_new = np.r_[new[: int(a * RATE) - 800], new[int(b * RATE) + 800 :]][: len(rest)]
    assert float(np.corrcoef(rest, rest_new)[0, 1]) > 0.95  # everything else untouched (encoded once more)


def _snr_kept(pcm: np.ndarray, out: np.ndarray, m: CutMap, sr: int) -> float:
    """SNR (dB) of ``out`` against ``pcm`` over everything the cut map ``m`` kept, each kept stretch found in
    ``out`` where the map puts it, 30 ms clear of each join's crossfade."""
    edge = int(0.03 * sr)
    starts = [0.0, *(b for _, b in m.cuts)]
    ends = [*(a for a, _ in m.cuts), len(pcm) / sr]
    sig = err = 0.0
    for u, v in zip(starts, ends, strict=True):
        a, b = round(u * sr) + edge, round(v * sr) - edge
        at = round(m.time(u) * sr) + edge
        ref, got = pcm[a:b], out[at : at + (b - a)]
        if b <= a or len(got) < len(ref):
            continue
        sig += float(np.sum(ref.astype(np.float64) ** 2))
        err += float(np.sum((ref.astype(np.float64) - got) ** 2))
    return 10 * np.log10(sig / err)


def test_the_cut_file_is_one_lossy_generation(build: dict[str, Any], tmp_path: Path) -> None:
    """The edit cuts the 16-bit PCM the master's MP3 was encoded from (master.flac), not a decoded MP3: everywhere
    but at its joins the published file is as close to that PCM as the master's own MP3 is. Cutting the decoded MP3
    instead stacks a second generation of coding noise on the first."""
    master: Master = build["first"].get(Master)
    edited: Edited = build["second"].get(Edited)
    flac = master.lossless_source()
    assert flac is not None and flac == build["layout"].master_flac
    assert edited.master.lossless is None  # the cut file has no lossless copy of its own
    probe = ffmpeg.probe(flac)
    assert (probe.codec, probe.sample_fmt) == ("flac", "s16")
    assert (probe.sample_rate, probe.channels) == (master.sample_rate, master.channels)
    sr = master.sample_rate
    pcm, mp3 = decode_master(master, flac), decode_master(master, master.mp3)
    assert abs(len(pcm) - len(mp3)) <= 1  # the same frames: LAME's header gives decoders its delay and padding
    one = _snr_kept(pcm, mp3, CutMap(), sr)  # the master's MP3: one generation, nothing cut
    cut = _snr_kept(pcm, decode_master(master, edited.master.mp3), edited.map, sr)
    # The old way: the decoded MP3 cut (at its own quietest points) and encoded again.
    chosen = [c for c in build["cuts"].candidates if c.id in {a.id for a in edited.applied}]
    old_way = decode_master(master, master.mp3)
    again, again_map, _ = apply_cuts(master, chosen, tmp_path / "again.mp3", tmp_path / "master.json", audio=old_way)
    twice = _snr_kept(pcm, decode_master(master, again.mp3), again_map, sr)
    assert abs(cut - one) < 0.5, (one, cut)
    assert twice < one - 1.5, (one, twice)
    # A lossless copy that no longer matches is not used.
    changed = tmp_path / "master.flac"
    changed.write_bytes(flac.read_bytes()[:-1000])
    assert replace(master, lossless=changed).lossless_source() is None


def test_without_its_lossless_copy_the_master_is_cut_from_its_mp3(
    build: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A build whose master.flac was deleted still cuts (the MP3, as before the copy existed) and says why."""
    master: Master = build["first"].get(Master)
    gone = replace(master, lossless=tmp_path / "deleted.flac")
    layout = load_settings(build["cfg"], tmp_path / "build").layout("ep-1")
    heard = transcript.Heard.load(build["layout"].heard_json)
    settings = load_settings(build["cfg"], tmp_path / "build").show.edit
    decisions = CutDecisions()
    with caplog.at_level("WARNING", logger="keylime_prod.edit"):
        result = edit.edit_master(gone, heard.words, settings, decisions, layout, decisions_file=tmp_path / "none")
    assert "deleted.flac is missing or changed; cutting the MP3 itself" in caplog.text
    assert result.map.cuts and result.master.mp3.is_file()
    assert read_cuts(layout.cuts_json).source == str(master.mp3)  # the candidates' times are the master's


def test_produce_cuts_lists_the_candidates(build: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(build["tmp"])
    args = ["cuts", "ep-1", "--configs", str(build["cfg"]), "--build-dir", str(build["tmp"] / "build"), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    ids = {c["id"]: c for c in doc["candidates"]}
    assert set(ids) == {c.id for c in build["cuts"].candidates}
    assert all(c["decision"] in ("accepted", "cut") for c in ids.values() if c["kind"] != "pause"), ids


def test_a_multitrack_master_is_cut_at_one_session_time_for_every_track(tmp_path: Path) -> None:
    """The demo session (three tracks, offsets -220/0/+350 ms, scripts/make_multitrack_media.py): a cut in the mix at
    a session time moves what every track says after it by the same amount, to where the cut map says."""
    repo = Path(__file__).resolve().parent.parent
    demo = repo / "configs" / "raw" / "multitrack-demo"
    truth = json.loads((demo / "session.json").read_text("utf-8"))
    master = run_episode(load_settings(repo / "configs", tmp_path / "build"), "multitrack-demo", upto="master").get(
        Master
    )
    assert master is not None and len(master.tracks) == 3
    origin = min(t["start_s"] for t in truth["tracks"])  # the mix's session timeline starts with the earliest track

    def published(t: float) -> float:  # a time in the truth's frame (the first track's) -> the master
        return master.body_to_episode(t - origin)

    gap = (truth["turns"][0]["end"] + 0.1, truth["turns"][1]["start"] - 0.1)  # between the first two turns
    own = Candidate("own-0", "pause", published(gap[0]), published(gap[1]), "cut", 1.0, "", "")
    out, m, _ = apply_cuts(master, [own], tmp_path / "cut.mp3", tmp_path / "master.json")
    assert 0.2 < m.removed < 0.5
    mix = decode(out.mp3)
    tracks = {t["speaker"]: (decode(demo / t["file"]), t["start_s"]) for t in truth["tracks"]}
    for turn in truth["turns"][:4]:
        x, start = tracks[turn["speaker"]]
        t = (turn["start"] + turn["end"]) / 2  # the middle of the turn, in the truth's frame
        needle = x[int((t - start) * RATE) : int((t - start + 0.6) * RATE)]
        expected = m.time(published(t))
        at = found_at(needle, mix, expected)
        assert abs(at - expected) < 0.01, (turn["speaker"], at, expected)
    # The turns after the cut are earlier by what it took out; the first one, before it, is where it was.
    assert m.time(published(truth["turns"][0]["start"] + 1)) == published(truth["turns"][0]["start"] + 1)
