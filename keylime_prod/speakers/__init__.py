"""The speakers stage: who speaks when in one mixed recording, and who each voice is (docs/speakers.md).

:func:`diarize` finds the turns (:mod:`.turns`: Silero VAD, the GE2E voice encoder of :mod:`.voice`, clustering) in
the episode's raw recordings, laid end to end, and matches each voice found against the hosts' enrolled samples
(``[speakers] voices`` in show.toml). It writes ``turns.json`` and runs before mastering, so the leveler can bring
each speaker to the same loudness. :func:`names_of` then names the voices, cheaply, every time the producer changes
a name: an enrolled host's voice gets the host's name; when the episode lists exactly as many guests as voices remain
unnamed, they get the guests' names (in order of who speaks first); the producer's ``[names]`` in
``configs/episodes/<id>.speakers.toml`` have the last word; anything else stays ``Speaker N``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..config import SpeakerSettings
from ..errors import FFmpegError, SpeakersError
from ..progress import ProgressFn, null_progress
from . import turns as found
from . import voice
from .artefact import Turn, Turns, Voice, read_turns, write_turns

log = logging.getLogger(__name__)

__all__ = ["Naming", "Turn", "Turns", "Voice", "diarize", "label", "names_of", "read_turns", "write_turns"]


def label(i: int) -> str:
    """The label of the ``i``-th voice to speak (from 0): ``Speaker 1``, ``Speaker 2`` ..."""
    return f"Speaker {i + 1}"


def _decode(path: Path, what: str) -> np.ndarray:
    """``path`` as 16 kHz mono float32 (the project's ffmpeg)."""
    args = ffmpeg.decode_args(path, sample_rate=voice.SAMPLE_RATE, channels=1, fmt="f32le")
    try:
        data = b"".join(ffmpeg.read_stream(args, chunk_bytes=1 << 20, where=path))
    except FFmpegError as e:
        raise SpeakersError(f"{what}: cannot decode: {e.message}", where=path) from e
    return np.frombuffer(data, dtype="<f4", count=len(data) // 4)


def _enrol(voices: Mapping[str, Path]) -> dict[str, np.ndarray]:
    """Each enrolled host's voice vector, from their sample (its speech only)."""
    out: dict[str, np.ndarray] = {}
    for name, path in voices.items():
        what = f"speakers.voices.{name}"
        if not Path(path).is_file():
            raise SpeakersError(f"{what}: the voice sample is missing", where=path,
                                hint="give a file of a few seconds to a minute of this host alone")  # fmt: skip
        audio = _decode(Path(path), what)
        speech = found.speech_frames(audio)
        if speech.sum() * found.FRAME_S < 2.0:
            raise SpeakersError(
                f"{what}: {speech.sum() * found.FRAME_S:.1f} s of speech in the sample, too little to know a voice by",
                where=path, hint="give a sample with at least a few seconds of this host speaking alone",
            )  # fmt: skip
        out[name] = voice.embed_voice(audio, speech)
    return out


def diarize(
    recordings: Sequence[Path],
    settings: SpeakerSettings,
    dest: Path | None = None,
    *,
    progress: ProgressFn | None = None,
) -> Turns:
    """Who speaks when in ``recordings`` (played one after the other; times on them laid end to end), each voice
    matched against the enrolled hosts; written to ``dest`` (``turns.json``) when given."""
    progress = progress or null_progress
    t0 = time.perf_counter()
    hosts = _enrol(settings.voices)  # first: a missing sample fails in a second, not after the recording's work
    audios = [_decode(Path(p), f"recording {i + 1}") for i, p in enumerate(recordings)]
    progress("Finding speakers", 1, 5)
    # VAD per recording (a stretch never runs across two files), then one timeline.
    speech = np.concatenate([found.speech_frames(a)[: len(a) // voice.HOP] for a in audios] or [np.zeros(0, bool)])
    audio = np.concatenate([a[: len(a) // voice.HOP * voice.HOP] for a in audios] or [np.zeros(0, np.float32)])
    progress("Finding speakers", 2, 5)
    mel = voice.power_frames(audio)
    energy = voice.frame_energy(audio)
    speech = np.r_[speech, np.zeros(max(0, len(mel) - len(speech)), bool)][: len(mel)]
    starts = found.window_starts(speech, step=max(1, round(settings.window_step_s / found.FRAME_S)))
    vectors = voice.encoder().embed(voice.windows(mel, energy, starts)) if len(starts) else np.zeros((0, 256))
    progress("Finding speakers", 3, 5)
    count = settings.count if isinstance(settings.count, int) else None
    groups = found.cluster(vectors, count)
    centroids, matched = _match(groups.centroids, hosts, settings.match_similarity)
    progress("Finding speakers", 4, 5)
    raw = found.to_turns(found.frame_scores(starts, vectors, centroids, len(speech)), speech)
    # Labels in order of first speech; voices that found no turn are dropped.
    order: list[int] = []
    for v, _, _ in raw:
        if v not in order:
            order.append(v)
    seconds = {v: sum(e - s for w, s, e in raw if w == v) for v in order}
    voices = []
    for i, v in enumerate(order):
        host, sim, nearest = matched[v]
        voices.append(Voice(label(i), round(seconds[v], 2), host, sim, nearest))
    result = Turns(
        turns=tuple(Turn(label(order.index(v)), s, e) for v, s, e in raw),
        voices=tuple(voices),
        method="ge2e-resemblyzer",
        sources=tuple(Path(p).name for p in recordings),
        audio_seconds=round(len(audio) / voice.SAMPLE_RATE, 3),
        elapsed_seconds=round(time.perf_counter() - t0, 3),
        settings=settings.model_dump(mode="json", exclude={"voices"}) | {"voices": sorted(settings.voices)},
    )
    progress("Finding speakers", 5, 5)
    log.info(
        "speakers: %d voices in %.0f s of audio (%s), %d turns, in %.1f s",
        len(voices), result.audio_seconds,
        ", ".join(f"{v.label}={v.host}" if v.host else v.label for v in voices) or "none", len(result.turns),
        result.elapsed_seconds,
    )  # fmt: skip
    if dest is not None:
        write_turns(dest, result)
    return result


def _match(
    centroids: np.ndarray, hosts: Mapping[str, np.ndarray], threshold: float
) -> tuple[np.ndarray, dict[int, tuple[str | None, float | None, str | None]]]:
    """Each voice's enrolled host: the nearest host whose sample lies within ``threshold`` (cosine). Two voices
    that both match one host are one voice (a host's voice split by the clustering): they are merged, and the
    centroids returned are the merged ones. Returns the centroids and, per voice, ``(host, similarity, nearest)``."""
    k = len(centroids)
    if not hosts or k == 0:
        return centroids, {v: (None, None, None) for v in range(k)}
    names = list(hosts)
    sims = centroids @ np.stack([hosts[n] for n in names]).T  # (voices, hosts)
    best = np.argmax(sims, axis=1)
    groups: dict[str, list[int]] = {}
    for v in range(k):
        if sims[v, best[v]] >= threshold:
            groups.setdefault(names[best[v]], []).append(v)
    keep = list(range(k))
    merged = centroids.copy()
    for members in groups.values():
        if len(members) > 1:
            c = centroids[members].mean(axis=0)
            merged[members[0]] = c / max(float(np.linalg.norm(c)), 1e-9)
            keep = [v for v in keep if v not in members[1:]]
    out = merged[keep]
    info: dict[int, tuple[str | None, float | None, str | None]] = {}
    for i, v in enumerate(keep):
        s = out[i] @ np.stack([hosts[n] for n in names]).T
        j = int(np.argmax(s))
        host = names[j] if s[j] >= threshold and v in [m[0] for m in groups.values()] else None
        info[i] = (host, round(float(s[j]), 3), names[j])
    return out, info


@dataclass(frozen=True)
class Naming:
    """Who each voice is: ``names`` by label, ``how`` each name was decided (``voice``: an enrolled host's sample;
    ``guest``: the one guest left, or as many guests as voices left; ``producer``: the speakers file; ``unnamed``),
    and the labels still unnamed (the report asks for them)."""

    names: dict[str, str]
    how: dict[str, str]

    @property
    def unnamed(self) -> tuple[str, ...]:
        """Labels nobody has named yet."""
        return tuple(lab for lab, h in self.how.items() if h == "unnamed")


def names_of(turns: Turns, guests: Sequence[str], given: Mapping[str, str]) -> Naming:
    """Name the voices of ``turns`` (see the module): ``guests`` are the episode's guests' names, ``given`` the
    producer's ``[names]`` (by label, or by the name a voice was given)."""
    names: dict[str, str] = {}
    how: dict[str, str] = {}
    hosts = {v.host for v in turns.voices if v.host}
    for v in turns.voices:
        names[v.label], how[v.label] = (v.host, "voice") if v.host else (v.label, "unnamed")
    left = [v.label for v in turns.voices if not v.host]
    free = [g for g in guests if g not in hosts]
    if left and len(left) == len(free):
        for lab, guest in zip(left, free, strict=True):
            names[lab], how[lab] = guest, "guest"
    for lab in list(names):
        for key in (lab, names[lab]):
            if key in given:
                names[lab], how[lab] = given[key], "producer"
                break
    return Naming(names, how)
