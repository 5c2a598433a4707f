"""Applying decided cuts to the master: the audio spliced (:mod:`.splice`), the master's timeline carried through
the :class:`~.artefact.CutMap`, the cut file measured again (docs/editing.md, "Applying the cuts").

The master is cut at its own times. For a multitrack episode those are session times, the same for every track
(the mix is the tracks laid on one session timeline), so cutting the mix cuts every track at the same moment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from .. import ffmpeg, fsutil
from ..audio.artefact import CurvePair, Loudness, LoudnessCurves, Master, TimelineSegment
from ..errors import EditError
from . import splice
from .artefact import Applied, Candidate, CutMap

#: Cut spans closer than this are joined into one (two crossfades would overlap).
MERGE_GAP_S = 0.05


def _search(c: Candidate) -> float:
    # Candidates are found on the audio's own silences and onsets; a producer's own cut (``own-N``) is placed by ear.
    return splice.WORD_SEARCH_S if c.id.startswith("own-") else splice.SEARCH_S


def _spans(x: np.ndarray, chosen: Sequence[Candidate], rate: int, within: tuple[float, float]) -> list[Applied]:
    lo, hi = within
    out: list[Applied] = []
    for c in sorted(chosen, key=lambda c: c.start):
        start, end = max(c.start, lo), min(c.end, hi)
        if end <= start:
            continue
        w = int(_search(c) * rate)
        a = splice.quiet_point(x, round(start * rate), w, rate)
        b = splice.quiet_point(x, round(end * rate), w, rate)
        if b - a < int(2 * splice.CROSSFADE_S * rate):
            continue  # nothing left to take out once both ends sit in silence
        action: Literal["cut", "mute"] = "mute" if c.action == "mute" else "cut"
        out.append(Applied(c.id, c.kind, action, c.start, c.end, round(a / rate, 6), round(b / rate, 6)))
    return out


def _merged(spans: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < MERGE_GAP_S:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def retime_pieces(pieces: Sequence[TimelineSegment], cut_map: CutMap) -> tuple[TimelineSegment, ...]:
    """The master's pieces on the cut timeline: each split where a cut falls inside it, every part keeping the raw
    time its first sample came from (``source_start``), so ``Master.body_to_episode`` maps a chapter's raw time onto
    the cut file, and a time inside a cut lands on the join."""
    out: list[TimelineSegment] = []
    for p in pieces:
        edges, t = [], p.start
        for a, b in cut_map.cuts:
            if b <= p.start or a >= p.end:
                continue
            if a > t:
                edges.append((t, a))
            t = max(t, b)
        if t < p.end:
            edges.append((t, p.end))
        for u, v in edges:
            new = cut_map.time(u)
            out.append(replace(p, start=round(new, 6), end=round(new + (v - u), 6),
                               source_start=round(p.source_start + (u - p.start), 6)))  # fmt: skip
    return tuple(out)


#: The master is read and written in blocks of this many bytes (a pipe write of the whole hour at once goes through
#: ``subprocess`` in 4 KiB pieces: an hour's encode then spent more time in system calls than in LAME).
BLOCK_BYTES = 1 << 22


def decode_master(master: Master, source: Path | None = None) -> np.ndarray:
    """The master's samples, ``(frames, channels)`` float32, read in blocks into one array: from ``source`` if
    given, else from its lossless copy if that is still the one it wrote (:meth:`Master.lossless_source`), else from
    its MP3."""
    source = source or master.lossless_source() or master.mp3
    ch = master.channels
    args = ffmpeg.decode_args(source, sample_rate=master.sample_rate, channels=ch)
    x = np.empty((round(master.duration * master.sample_rate) + master.sample_rate, ch), np.float32)
    flat = x.reshape(-1).view(np.uint8)
    n = 0
    for buf in ffmpeg.read_stream(args, chunk_bytes=BLOCK_BYTES, where=source):
        if n + len(buf) > len(flat):  # longer than master.json says: grow (never expected; never wrong)
            x = np.concatenate([x, np.empty((len(x) // 2 + len(buf) // (4 * ch) + 1, ch), np.float32)])
            flat = x.reshape(-1).view(np.uint8)
        flat[n : n + len(buf)] = np.frombuffer(buf, np.uint8)
        n += len(buf)
    if not n:
        raise EditError("no audio in the master", where=master.mp3, hint="run `produce master EPISODE` again")
    return x[: n // (4 * ch)]


def _encode(
    pieces: Iterable[np.ndarray], master: Master, dest: Path, seconds: float
) -> tuple[ffmpeg.EbuR128, float, int]:
    """Encode ``pieces`` (float32 blocks in order, at most ``seconds`` long) with the master's settings to ``dest``
    (atomically), measured by ffmpeg's EBU R128 scan while LAME writes it; returns the scan, the largest sample and
    the frames written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    part.unlink(missing_ok=True)
    args = ffmpeg.encode_mp3_args(
        part, sample_rate=master.sample_rate, channels=master.channels, bitrate_kbps=master.bitrate_kbps, in_fmt="f32le"
    )
    # ``-f mp3`` is in the arguments, so the temporary name needs no .mp3 ending.
    proc = ffmpeg.popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    scan = ffmpeg.FollowingEbuR128(part)
    peak, frames = 0.0, 0
    try:
        assert proc.stdin is not None
        for piece in pieces:
            if not len(piece):
                continue
            peak = max(peak, float(np.max(np.abs(piece))))
            frames += len(piece)
            data = np.ascontiguousarray(piece, np.float32).data.cast("B")
            for k in range(0, len(data), BLOCK_BYTES):
                with proc.waiting():
                    proc.stdin.write(data[k : k + BLOCK_BYTES])
        ffmpeg.finish(proc, where=dest)
        measured = scan.finish(ffmpeg.full_pass_timeout(seconds))
    except BaseException:
        scan.abort()
        proc.kill()
        proc.wait()
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return measured, peak, frames


def apply_cuts(
    master: Master,
    chosen: Sequence[Candidate],
    mp3: Path,
    report: Path,
    curves: tuple[Path, Path] | None = None,
    audio: np.ndarray | None = None,
) -> tuple[Master, CutMap, tuple[Applied, ...]]:
    """Cut (or, for ``mute`` candidates, cover with room tone) ``chosen`` in the master's body and write the result
    to ``mp3`` with its ``master.json`` at ``report`` (and the report's loudness curves ``curves[0]`` on the cut
    timeline to ``curves[1]``); ``audio``: the master's samples if already decoded (:func:`decode_master`). Returns
    the cut master, the map of its timeline and where each splice fell. Nothing to apply: the master itself,
    unchanged."""
    if not chosen:
        return master, CutMap(), ()
    x = decode_master(master) if audio is None else audio
    rate = master.sample_rate
    body = master.body
    applied = _spans(x, chosen, rate, (body.start, body.end))
    if not applied:
        return master, CutMap(), ()
    muted = _merged([(a.at_start, a.at_end) for a in applied if a.action == "mute"])
    cuts = _merged([(a.at_start, a.at_end) for a in applied if a.action == "cut"])
    y = x
    if muted:
        tone = splice.room_tone(x, rate, within=(round(body.start * rate), round(body.end * rate)))
        y = splice.mute(y, [(round(a * rate), round(b * rate)) for a, b in muted], tone, rate)
    spans = [(round(a * rate), round(b * rate)) for a, b in cuts]
    cut_map = CutMap(cuts=tuple((round(a / rate, 6), round(b / rate, 6)) for a, b in spans), muted=muted)
    measured, peak, frames = _encode(splice.cut_pieces(y, spans, rate), master, mp3, len(y) / rate)
    del x, y
    loud = Loudness(
        integrated_lufs=measured.integrated_lufs,
        lra_lu=measured.lra_lu,
        true_peak_dbtp=measured.true_peak_dbtp if measured.true_peak_dbtp is not None else float("nan"),
        sample_peak_dbfs=round(20 * np.log10(max(peak, 1e-10)), 2),
    )
    segments = tuple(
        replace(s, start=round(cut_map.time(s.start), 6), end=round(cut_map.time(s.end), 6)) for s in master.segments
    )
    edited = replace(
        master,
        mp3=mp3,
        report=report,
        duration=round(frames / rate, 6),
        audio_sha256=fsutil.sha256_file(mp3),
        segments=segments,
        pieces=retime_pieces(master.pieces or (master.body,), cut_map),
        output_loudness=loud,
        lossless=None,  # the cut file has no lossless copy: nothing reads one after the edit
        lossless_sha256=None,
    )
    edited.write()
    if curves is not None and curves[0].is_file():
        cut_curves(LoudnessCurves.load(curves[0]), cut_map).write(curves[1])
    return edited, cut_map, tuple(applied)


def cut_curves(curves: LoudnessCurves, cut_map: CutMap) -> LoudnessCurves:
    """The report's loudness curves on the cut timeline: the hops whose middle was cut are left out (their windows
    reach a little across each join, as the file's own do)."""
    hop = curves.hop_s

    def kept(values: tuple[float | None, ...]) -> tuple[float | None, ...]:
        mids = (np.arange(len(values)) + 0.5) * hop
        starts = np.array([a for a, _ in cut_map.cuts])
        ends = np.array([b for _, b in cut_map.cuts])
        # The last cut starting at or before each hop's middle: the hop is gone if its middle is before that end.
        k = np.searchsorted(starts, mids, side="right") - 1
        gone = (k >= 0) & (mids < ends[np.maximum(k, 0)]) if len(starts) else np.zeros(len(values), bool)
        return tuple(v for v, g in zip(values, gone, strict=True) if not g)

    def kept_pair(pair: CurvePair) -> CurvePair:
        return CurvePair(momentary=kept(pair.momentary), short_term=kept(pair.short_term))

    return LoudnessCurves(hop_s=hop, before=kept_pair(curves.before), after=kept_pair(curves.after))
