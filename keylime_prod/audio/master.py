"""The mastering stage: raw recordings in, a loudness-correct MP3 with intro, disclaimer and outro out.

``master(episode, settings, assets, build_dir) -> Master``. What it does, in order:

1. **Probe and measure** (pass 1, streaming; :mod:`.inputs`): BS.1770-4 integrated loudness, LRA, true peak, and
   where speech starts and ends, from 10 ms sums only.
2. **Plan the gain** (:mod:`.plan`): each part to the target on its own, beds relative to speech, the *file* on
   target.
3. **Calibrate the codec** (:func:`.plan.calibrate`) on a 20 s excerpt and the windows of the highest peaks, and
   pre-compensate (the loudness it takes, the true peak it adds).
4. **Render** (pass 2, streaming into LAME; :mod:`.render`).
5. **Verify** the decoded MP3 with the meter (:mod:`.measure`): integrated loudness within ``tolerance_lu`` of the
   target and true peak under the ceiling, or correct and render again (at most twice). ``master.json`` (built by
   :func:`build_report`) says whether gain alone or the limiter got there (ffmpeg's ``loudnorm`` switches to
   dynamic mode silently; we say so).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, ffmpeg, fsutil
from ..config import Assets, AudioSettings, EpisodeConfig
from ..errors import AudioError
from ..layout import BuildLayout
from ..progress import ProgressFn, null_progress
from . import speech
from .artefact import (
    AssetDetails,
    BodyOutput,
    CodecCalibration,
    DenoiseSummary,
    LevelerSummary,
    LimiterFigures,
    Loudness,
    LoudnessCurves,
    Master,
    MasteredDetails,
    Mp3Format,
    PartDetails,
    RenderPass,
    TimelineSegment,
)
from .inputs import (
    DC_HIGHPASS_HZ,
    DC_LIMIT,
    Asset,
    Part,
    check_file,
    load_asset,
    measure_part,
    measure_rate,
    remove_dc,
)
from .loudness import SUB_MS, Meter, curves_of, integrated_from_energy, lin_to_db, lra_from_energy
from .plan import MIN_CODEC_MARGIN_DB, Plan, calibrate, episode_energy, plan_layout
from .render import RenderStats, render
from .speakers import level as level_speakers
from .speakers import per_recording

log = logging.getLogger(__name__)

MAX_RENDERS = 3
RERENDER_TP_MARGIN_DB = 0.3
CODEC_TP_SAFETY_DB = 0.6


class _Clock:
    """Wall time per step, summed over repeats (recorded in master.json so slow steps are visible)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._t, 3)
        self._t = now
        log.debug("mastering step %s: %.2f s", name, self.laps[name])


def master(
    episode: EpisodeConfig,
    settings: AudioSettings,
    assets: Assets,
    build_dir: Path,
    *,
    progress: ProgressFn | None = None,
    speakers: Sequence[tuple[str, float, float]] = (),
) -> Master:
    """Master one episode into ``build_dir/<id>.mp3`` and ``build_dir/master.json``.

    ``speakers``: who speaks when (``(label, start_s, end_s)`` on the recordings laid end to end, the speakers
    stage's turns): the leveler then brings each speaker to the same loudness first (:mod:`.speakers`).

    Raises :class:`AudioError` for unusable inputs (missing, empty, corrupt, truncated, unsupported, silent) and
    writes nothing under the final names in that case: both outputs appear atomically at the very end.
    """
    progress = progress or null_progress
    s = settings
    sr = s.sample_rate
    build_dir = Path(build_dir)
    # Validate every input before any long work so a bad file fails in seconds, not after an hour of decoding.
    probes = [check_file(Path(rec), f"recording {i + 1}") for i, rec in enumerate(episode.recordings)]
    named = {"intro": assets.intro, "disclaimer": assets.disclaimer, "outro": assets.outro}
    for name, path in named.items():
        if path is not None:
            check_file(Path(path), f"{name} asset")

    # Pass 1: measure.
    expected = sum(int((pr.duration or 0) * sr) for pr in probes) or 1
    done = [0]

    def report(n: int) -> None:
        done[0] += n
        progress("Measuring loudness", done[0], expected)

    clock = _Clock()
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(dir=build_dir, prefix=".master-")
    work = Path(tmp.name)
    try:
        return _master(episode, s, probes, named, build_dir, work, clock, report, progress, speakers)
    finally:
        tmp.cleanup()


def _master(
    episode: EpisodeConfig,
    s: AudioSettings,
    probes: list[ffmpeg.Probe],
    named: dict[str, Path | None],
    build_dir: Path,
    work: Path,
    clock: _Clock,
    report: Callable[[int], None],
    progress: ProgressFn,
    speakers: Sequence[tuple[str, float, float]] = (),
) -> Master:
    sr, ch = s.sample_rate, s.channels
    turns = per_recording(speakers, [pr.duration or 0.0 for pr in probes])
    prepared = [
        prepare_recording(Path(rec), info, s, i, report, work, turns[i])
        for i, (rec, info) in enumerate(zip(episode.recordings, probes, strict=True))
    ]
    raw_parts = [r[0] for r in prepared]
    parts = [r[1] for r in prepared]
    processing = [r[2] for r in prepared]
    clock.lap("measure")
    loaded = {name: load_asset(name, Path(path), s) for name, path in named.items() if path is not None}
    clock.lap("assets")

    # Plan: level each part to the target, beds relative to speech, then aim the whole file at the target.
    part_gains = [s.target_lufs - p.loudness for p in parts]
    asset_gains = {
        n: s.target_lufs + (s.music_offset_lu if a.is_music else 0.0) - a.loudness for n, a in loaded.items()
    }
    layout = plan_layout(parts, loaded, s)

    def planned(shift: float, ceiling_db: float | None) -> float:
        """Integrated loudness of the planned file (before the codec) with every gain moved by ``shift``."""
        gains = [g + shift for g in part_gains]
        beds = {k: v + shift for k, v in asset_gains.items()}
        return integrated_from_energy(episode_energy(parts, loaded, gains, beds, layout, s, ceiling_db))

    def aim(shift: float, ceiling_db: float | None) -> float:
        """The shift that puts the planned file on the target (a few rounds: limiting depends on the shift)."""
        for _ in range(1 if ceiling_db is None else 4):
            shift += s.target_lufs - planned(shift, ceiling_db)
        return shift

    shift = aim(0.0, None)

    loudest = max(range(len(parts)), key=lambda i: parts[i].kept)
    ceiling = s.true_peak_db - MIN_CODEC_MARGIN_DB
    d_lu, d_tp = calibrate(parts, [g + shift for g in part_gains], loudest, s, ceiling, work)
    clock.lap("calibrate")
    # The calibration's windows sample the highest peaks, but the render holds hundreds at the ceiling and the
    # codec's largest overshoot over all of them is what counts: on the 10-minute bench episode (bench/episode.py)
    # the windows measured +0.16 dB and the render's worst was +0.37 dB; on the clean hour +0.03 and +0.42 dB, and
    # +0.01 and +0.47 dB in a second run (the more peaks at the ceiling, the larger the worst): 0.6 dB covers them
    # with 0.13 dB to spare (docs/audio.md, "One render").
    ceiling = s.true_peak_db - max(MIN_CODEC_MARGIN_DB, d_tp + CODEC_TP_SAFETY_DB)
    shift = aim(shift, ceiling) - d_lu  # the codec made it quieter by -d_lu: pre-compensate

    paths = BuildLayout(build_dir, episode.id)  # `layout` is the plan's
    final = paths.master_mp3
    # What the plan predicted for each render against what the verifier measured (master.json): a miss of the
    # 0.2 LU window costs a whole second render, so the prediction's error is worth keeping in sight.
    history: list[dict[str, float]] = []
    for attempt in range(1, MAX_RENDERS + 1):
        gains = [g + shift for g in part_gains]
        plan = Plan(
            **asdict(layout),
            sr=sr,
            ch=ch,
            part_gains_db=tuple(gains),
            asset_gains_db={k: v + shift for k, v in asset_gains.items()},
            ceiling_db=ceiling,
        )
        mp3_tmp, flac_tmp = work / f"render-{attempt}.mp3", work / f"render-{attempt}.flac"
        stats, out = render(mp3_tmp, parts, loaded, plan, s, progress, lossless=flac_tmp)
        clock.lap("render+verify")
        got = out.measure()
        err_lu = s.target_lufs - got.integrated_lufs
        over = got.true_peak_dbtp - s.true_peak_db
        predicted = planned(shift, ceiling) + d_lu
        history.append({"planned_lufs": round(predicted, 2), "lufs": round(got.integrated_lufs, 2),
                        "true_peak_dbtp": round(got.true_peak_dbtp, 2)})  # fmt: skip
        log.info(
            "render %d: %.2f LUFS (planned %.2f), %.2f dBTP (limiter: %.2f dB max reduction)",
            attempt, got.integrated_lufs, predicted, got.true_peak_dbtp, stats.reduction_db,
        )  # fmt: skip
        if abs(err_lu) <= min(0.2, s.tolerance_lu) and over <= 0.0:
            break
        if attempt == MAX_RENDERS:
            if abs(err_lu) <= s.tolerance_lu and over <= 0.0:
                break
            raise AudioError(
                f"could not reach {s.target_lufs:g} LUFS / {s.true_peak_db:g} dBTP after {attempt} renders "
                f"(got {got.integrated_lufs:.2f} LUFS, {got.true_peak_dbtp:.2f} dBTP)",
                where=episode.id,
                hint="check the recordings for clipping, or relax audio.tolerance_lu",
            )
        shift += err_lu
        if over > 0.0:
            # The codec's overshoot does not follow the ceiling dB for dB (a 0.2 dB lower ceiling once took a
            # 0.10 dB miss to a 0.01 dB miss, and a third render): step well clear of it.
            ceiling -= over + RERENDER_TP_MARGIN_DB

    mp3_info = ffmpeg.probe(mp3_tmp)
    # LAME's header carries the encoder delay and padding, so decoders return exactly the frames we wrote.
    duration = round(plan.total / sr, 6)
    if mp3_info.duration is not None and abs(mp3_info.duration - duration) > 0.05:
        log.warning("%s: ffmpeg reads %.2f s, %.2f s were written", final.name, mp3_info.duration, duration)
    with fsutil.atomic_path(final) as t:
        Path(mp3_tmp).replace(t)
    flac = paths.master_flac
    with fsutil.atomic_path(flac) as t:
        Path(flac_tmp).replace(t)
    result = build_report(
        episode, s, parts, loaded, plan, stats, out, renders=history, codec=(d_lu, d_tp), seconds=clock.laps,
        mp3=final, mp3_info=mp3_info, build_dir=build_dir, raw_parts=raw_parts, processing=processing,
    )  # fmt: skip
    # The production report's curves (format: see loudness_curves), then master.json:
    # master.json last, so a build that has it has everything.
    loudness_curves(parts, raw_parts, loaded, plan, out, s).write(paths.loudness_json)
    clock.lap("report")
    # The report's own lap is known only now that it is done: the recorded seconds take it in.
    assert isinstance(result.details, MasteredDetails)  # build_report makes one
    result = replace(
        result, details=replace(result.details, seconds=dict(clock.laps)),
        lossless=flac, lossless_sha256=fsutil.sha256_file(flac),
    )  # fmt: skip
    result.write()
    out_l = result.output_loudness
    log.info(
        "%s: %.2f LUFS, %.2f dBTP (%s)",
        final.name, out_l.integrated_lufs, out_l.true_peak_dbtp,
        "gain alone" if result.method == "gain" else f"gain and up to {-stats.reduction_db:.1f} dB of limiting",
    )  # fmt: skip
    return result


def prepare_recording(
    path: Path,
    info: ffmpeg.Probe,
    s: AudioSettings,
    index: int,
    report: Callable[[int], None],
    work: Path,
    turns: Sequence[tuple[str, float, float]] = (),
) -> tuple[Part, Part, dict[str, Any]]:
    """Pass 1 over one recording plus the speech processing: VAD and hum analysis (a thread, while pass 1 meters
    the file), noise floor, noise reduction where needed, and the leveler's gain curve.

    Returns the raw measurement (for the report's input figures), the part to plan and render, and what was done.
    """
    what = f"recording {index + 1}"
    wanted = s.leveler.enabled or s.denoise.mode != "off"
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(speech.analyse, path, what) if wanted else None
        raw = measure_part(path, info, s, index, report)
        an = fut.result() if fut is not None else None
    dc = {"offset_dbfs": _r(lin_to_db(raw.dc_offset)) if raw.dc_offset > 0 else None, "removed": False}
    has_dc = raw.dc_offset > DC_LIMIT
    dc["removed"] = has_dc
    if an is None:
        return raw, without_dc(raw, s, index, work) if has_dc else raw, {
            "leveler": {"note": "off"}, "denoise": {"decision": "off"}, "dc": dc,
        }  # fmt: skip
    sub = s.sample_rate * SUB_MS // 1000

    def kept_mask(p: Part) -> np.ndarray:
        s0 = p.keep_start // sub
        return an.mask(s0 + len(p.k_energy))[s0:]

    # The decision is made on the raw recording: a DC offset changes neither the VAD's speech nor the hum line,
    # and the K-weighting's high-pass takes it out of the noise floor. A recording that then goes through a file
    # pass (notches or noise reduction) loses its DC in that pass's 80 Hz high-pass: no DC copy of its own.
    floor = speech.noise_floor(raw.k_energy, kept_mask(raw))
    engine, why = speech.needs_denoise(s.denoise, floor, an)
    dfn_over = speech.dfn_stretches(
        s.denoise, engine, floor, raw.k_energy, kept_mask(raw),
        offset_s=raw.keep_start / s.sample_rate, length_s=raw.frames / s.sample_rate,
    )  # fmt: skip
    if dfn_over is not None and dfn_over.note:
        why = f"{why}; {dfn_over.note}"
        if engine is None or engine == speech.NOTCH:
            engine = "deepfilternet"  # with the gate, the gate's branch below hands over to it
    file_pass = engine not in (None, speech.PAUSE_GATE) or (engine == speech.PAUSE_GATE and an.hum_hz is not None)
    file_pass = file_pass or dfn_over is not None
    base = without_dc(raw, s, index, work) if has_dc and not file_pass else raw
    part = base
    mask = kept_mask(part)
    den: dict[str, Any] = {
        "decision": why,
        "engine": engine,
        "noise_floor_lufs_before": floor.noise_lufs,
        "noise_under_speech_db_before": _r(floor.under_speech_db),
        "pause_seconds": floor.pause_seconds,
        "hum_hz": an.hum_hz,
        "hum_line_db_before": an.hum_line_db,
        "hum_notches": speech.notch_text(an),
    }
    gate_db = 0.0
    if engine == speech.PAUSE_GATE:
        # The middle band: lower the pauses on the gain curve the render applies anyway (no pass of its own);
        # a hum line still gets its notches (the file pass below, with no noise engine).
        assert floor.under_speech_db is not None  # needs_denoise chose the gate from it
        gate_db = min(s.denoise.strength, max(0.0, speech.PAUSE_TARGET_DB - floor.under_speech_db))
        engine = "deepfilternet" if dfn_over is not None else speech.NOTCH if an.hum_hz is not None else None
        den.update(engine=speech.PAUSE_GATE, gate_db=_r(gate_db), strength_db=s.denoise.strength)
        if dfn_over is not None:
            den["engine"] = "deepfilternet, pause-gate"
    if engine is not None:
        dest = work / f"denoised-{index + 1}.flac"
        # On the mono mix: DeepFilterNet is a mono model, and a second channel of the same voice would double its
        # cost (the slowest step of a noisy recording) for nothing a listener of speech hears.
        if engine == speech.NOTCH:
            # The filters are the whole treatment: one ffmpeg process decodes and filters the recording and writes
            # the copy pass 2 renders from, while pass 1 measures that same stream and its hum line (writing the
            # copy and then decoding it twice more, to measure it and to find the hum left, took 36 of the clean
            # hour's 67 s of measuring: docs/performance.md, "The limit").
            left = speech.HumSpectrum(measure_rate(info, s.sample_rate))
            cleaned = measure_part(
                base.render_path, replace(info, channels=1), s, index, lambda n: None,
                filters=speech.prefilters(an.hum_hz, 1, an.hum_harmonics), keep=dest, tap=lambda x: left.add(x[:, 0]),
            )  # fmt: skip
            hum_left = left.lines()[1]
        else:
            if dfn_over is not None:
                den["dfn_stretches_s"] = dfn_over.seconds(raw.frames / s.sample_rate)
                den["dfn_seconds"] = round(sum(b - a for a, b in den["dfn_stretches_s"]), 2)
            speech.denoise(
                base.render_path, engine, an.hum_hz, s.denoise.strength, 1, floor.noise_lufs, dest, what,
                seconds=an.seconds, harmonics=an.hum_harmonics,
                stretches=dfn_over.samples if dfn_over is not None else None,
            )  # fmt: skip
            # The hum left (a 16 kHz decode of the copy) on the other core while pass 1 measures the copy.
            with ThreadPoolExecutor(1) as pool:
                hum_after = pool.submit(lambda: speech.analyse(dest, what, vad=False).hum_line_db)
                cleaned = measure_part(dest, ffmpeg.probe(dest), s, index, lambda n: None)
            hum_left = hum_after.result()
        part = replace(cleaned, path=path, source=dest)
        mask = kept_mask(part)
        after = speech.noise_floor(part.k_energy, mask)
        den.update(
            strength_db=s.denoise.strength,
            noise_floor_lufs_after=after.noise_lufs,
            noise_under_speech_db_after=_r(after.under_speech_db),
            attenuation_db=_r(None if after.noise_lufs is None or floor.noise_lufs is None
                               else floor.noise_lufs - after.noise_lufs),
            hum_line_db_after=hum_left,
        )  # fmt: skip
        log.info("%s: %s; %s reduced the noise floor by %s dB", what, why, engine, den["attenuation_db"])
    gate = None
    if gate_db > 0.0:
        gate = speech.pause_gate(mask, gate_db)
        before = speech.noise_floor(part.k_energy, mask)
        after = speech.noise_floor(part.k_energy * 10 ** (gate / 10), mask)
        den.update(
            noise_floor_lufs_after=after.noise_lufs,
            noise_under_speech_db_after=_r(after.under_speech_db),
            attenuation_db=_r(None if after.noise_lufs is None or before.noise_lufs is None
                               else before.noise_lufs - after.noise_lufs),
        )  # fmt: skip
        den.setdefault("hum_line_db_after", an.hum_line_db)
        log.info("%s: %s; the pauses lowered by %.1f dB", what, why, gate_db)
    plain = part
    # With who speaks when known, each speaker to the same loudness first (docs/speakers.md).
    lev, per_speaker = level_speakers(part.k_energy, mask, s.leveler, turns, shift_s=part.keep_start / s.sample_rate)
    leveler: dict[str, Any] = {
        "note": lev.note,
        "stretches": lev.stretches,
        "stretches_levelled": lev.levelled,
        "gain_range_db": list(lev.gain_range_db),
        "reference_lufs": lev.reference_lufs,
        "turn_spread_before_lu": lev.spread_before_lu,
        "turn_spread_after_lu": lev.spread_after_lu,
        **({"speakers": per_speaker} if per_speaker else {}),
    }
    if lev.curve_db is not None:
        # Pauses keep the level the file gain alone gives them: the part gain will rise by (before - after) of
        # the part's loudness, so the curve in a pause may not exceed (after - before).
        curve = lev.curve_db
        for _ in range(3):
            cap = integrated_from_energy(part.k_energy * 10 ** (curve / 10)) - part.loudness
            curve = speech.cap_pauses(lev.curve_db, mask, cap)
        levelled_ke = part.k_energy * 10 ** (curve / 10)
        part = replace(
            part,
            curve_db=curve,
            k_energy=levelled_ke,
            peaks=part.peaks * 10 ** (curve / 20),
            loudness=integrated_from_energy(levelled_ke),
        )
        leveler["gain_range_db"] = [round(float(curve.min()), 2), round(float(curve.max()), 2)]
        leveler["pause_cap_db"] = round(cap, 2)
        log.info(
            "%s: leveler %d of %d stretches, gain %+.1f..%+.1f dB, spread %s -> %s LU",
            what, lev.levelled, lev.stretches, curve.min(), curve.max(), lev.spread_before_lu, lev.spread_after_lu,
        )  # fmt: skip
    if gate is not None:
        # The gate rides on the leveler's curve (or is the curve): one gain per 10 ms, applied by the render.
        curve = gate if part.curve_db is None else part.curve_db + gate
        ke = plain.k_energy * 10 ** (curve / 10)
        part = replace(part, curve_db=curve, k_energy=ke, peaks=plain.peaks * 10 ** (curve / 20),
                       loudness=integrated_from_energy(ke))  # fmt: skip
    return raw, part, {"leveler": leveler, "denoise": den, "dc": dc}


def without_dc(raw: Part, s: AudioSettings, index: int, work: Path) -> Part:
    """A recording with a DC offset is rendered from a copy without it, measured again (its peaks
    change). One that is nothing but DC never gets here: pass 1 refuses it (:func:`.inputs.measure_part`)."""
    what = f"recording {index + 1}"
    offset = lin_to_db(raw.dc_offset)
    dest = remove_dc(raw.path, work / f"dc-{index + 1}.wav", what, raw.frames / s.sample_rate)
    part = measure_part(dest, ffmpeg.probe(dest), s, index, lambda n: None)
    log.warning("%s has a DC offset of %.1f dBFS: removed (%d Hz high-pass)", what, offset, DC_HIGHPASS_HZ)
    return replace(part, path=raw.path, source=dest, dc_offset=raw.dc_offset)


def loudness_curves(
    parts: list[Part], raw_parts: list[Part], loaded: dict[str, Asset], plan: Plan, out: Meter, s: AudioSettings
) -> LoudnessCurves:
    """``loudness.json``: ``{"hop_s", "before": {"momentary", "short_term"}, "after": {...}}`` in LUFS on the
    published timeline, ``null`` for -inf. *After* is the decoded MP3 (the verifier's 10 ms sums; its decode keeps
    LAME's ~25 ms encoder delay). *Before* is every input as it came in, placed where it sits in the episode: the
    raw recordings (before denoising and leveling) and the assets, with no gain, fades included."""
    sub = s.sample_rate * SUB_MS // 1000
    aligned = []
    for p, r in zip(parts, raw_parts, strict=True):
        # The raw energies on the processed part's kept stretch (a denoised copy may trim a little differently).
        e = np.zeros(len(p.k_energy))
        off = p.keep_start // sub - r.keep_start // sub
        a, b = max(0, -off), min(len(e), len(r.k_energy) - off)
        if b > a:
            e[a:b] = r.k_energy[a + off : b + off]
        aligned.append(replace(p, k_energy=e))
    before = episode_energy(aligned, loaded, [0.0] * len(parts), dict.fromkeys(loaded, 0.0), plan, s)
    return curves_of(out.k_energy, before)


def summarise_processing(processing: list[dict[str, Any]]) -> tuple[LevelerSummary, DenoiseSummary]:
    """The episode-wide line of what the leveler and the denoiser did (per recording it is under ``parts``)."""
    lev = [p["leveler"] for p in processing]
    den = [p["denoise"] for p in processing]

    def worst(items: list[dict[str, Any]], key: str, pick: Callable[..., Any]) -> Any:
        vals = [d[key] for d in items if d.get(key) is not None]
        return pick(vals) if vals else None

    engines = sorted({d["engine"] for d in den if d.get("engine")})
    return (
        LevelerSummary(
            stretches=sum(d.get("stretches", 0) for d in lev),
            stretches_levelled=sum(d.get("stretches_levelled", 0) for d in lev),
            gain_min_db=worst(lev, "gain_range_db", lambda v: min(r[0] for r in v)),
            gain_max_db=worst(lev, "gain_range_db", lambda v: max(r[1] for r in v)),
            turn_spread_before_lu=worst(lev, "turn_spread_before_lu", max),
            turn_spread_after_lu=worst(lev, "turn_spread_after_lu", max),
        ),
        DenoiseSummary(
            engine=", ".join(engines) or "none",
            recordings_denoised=sum(1 for d in den if d.get("engine")),
            noise_under_speech_db_before=worst(den, "noise_under_speech_db_before", min),
            noise_under_speech_db_after=worst(den, "noise_under_speech_db_after", min),
            hum_line_db_before=worst(den, "hum_line_db_before", max),
            hum_line_db_after=worst(den, "hum_line_db_after", max),
            dc_offsets_removed=sum(1 for p in processing if p.get("dc", {}).get("removed")),
        ),
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def build_report(
    episode: EpisodeConfig,
    s: AudioSettings,
    parts: list[Part],
    loaded: dict[str, Asset],
    plan: Plan,
    stats: RenderStats,
    out: Meter,
    *,
    renders: list[dict[str, float]],
    codec: tuple[float, float],
    seconds: dict[str, float],
    mp3: Path,
    mp3_info: ffmpeg.Probe,
    build_dir: Path,
    raw_parts: list[Part],
    processing: list[dict[str, Any]],
) -> Master:
    """The :class:`Master` artefact (``master.json``) of a finished render: where every segment and raw part sits
    on the final timeline, input and output loudness, what gain and limiter did, and how long each step took."""
    sr, ch = plan.sr, plan.ch
    got = out.measure()
    d_lu, d_tp = codec
    final = mp3
    duration = round(plan.total / sr, 6)
    method = "limiter" if stats.limited_frames > 0 or stats.reduction_db < -0.01 else "gain"
    sub = sr * SUB_MS // 1000

    def secs(frames: int) -> float:
        return round(frames / sr, 6)

    segs: list[TimelineSegment] = []
    if "intro" in loaded:
        segs.append(TimelineSegment("intro", 0.0, secs(plan.intro_frames), 0.0, (loaded["intro"].path.name,)))
    first_raw = parts[0].keep_start
    segs.append(
        TimelineSegment(
            "body",
            secs(plan.body_start),
            secs(plan.body_start + plan.body_frames),
            secs(first_raw),
            tuple(p.path.name for p in parts),
        )
    )
    if plan.disclaimer_start is not None:
        d = loaded["disclaimer"]
        segs.append(
            TimelineSegment(
                "disclaimer", secs(plan.disclaimer_start), secs(plan.disclaimer_start + len(d.pcm)), 0.0,
                (d.path.name,),
            )
        )  # fmt: skip
    if plan.outro_start is not None:
        o = loaded["outro"]
        segs.append(
            TimelineSegment("outro", secs(plan.outro_start), secs(plan.outro_start + len(o.pcm)), 0.0, (o.path.name,))
        )
    # Where each raw part sits: raw time (joined raw files, as a producer's editor shows them) -> episode time.
    pieces: list[TimelineSegment] = []
    raw_off, pos = 0, plan.body_start
    for i, p in enumerate(parts):
        pieces.append(
            TimelineSegment(
                f"part-{i + 1}", secs(pos), secs(pos + p.kept), secs(raw_off + p.keep_start),
                (p.path.name,),
            )
        )  # fmt: skip
        raw_off += p.frames
        pos += p.kept

    body_ke = np.concatenate([p.k_energy for p in raw_parts])
    input_loudness = Loudness(
        integrated_lufs=round(integrated_from_energy(body_ke), 2),
        lra_lu=round(lra_from_energy(body_ke), 2),
        true_peak_dbtp=round(lin_to_db(max(p.true_peak for p in raw_parts)), 2),
        sample_peak_dbfs=round(lin_to_db(max(p.sample_peak for p in raw_parts)), 2),
    )
    b0, b1 = plan.body_start // sub, (plan.body_start + plan.body_frames) // sub
    body_out = out.measure(b0, b1)
    output_loudness = Loudness(
        integrated_lufs=round(got.integrated_lufs, 2),
        lra_lu=round(got.lra_lu, 2),
        true_peak_dbtp=round(got.true_peak_dbtp, 2),
        sample_peak_dbfs=round(got.sample_peak_dbfs, 2),
    )
    leveler, denoise = summarise_processing(processing)
    result = Master(
        episode_id=episode.id,
        mp3=final,
        report=BuildLayout(build_dir, episode.id).master_json,
        duration=duration,
        sample_rate=sr,
        channels=ch,
        bitrate_kbps=s.bitrate_kbps,
        audio_sha256=fsutil.sha256_file(final),
        segments=tuple(segs),
        input_loudness=input_loudness,
        output_loudness=output_loudness,
        method=method,
        gain_db=round(float(np.mean(plan.part_gains_db)), 2),
        settings=s.model_dump(mode="json"),
        tools={"keylime-prod": __version__, "ffmpeg": ffmpeg.version(), "encoder": "libmp3lame"},
        pieces=tuple(pieces),
        details=MasteredDetails(
            parts=tuple(
                PartDetails(
                    file=p.path.name,
                    input_lufs=round(r.loudness, 2),
                    input_true_peak_dbtp=round(lin_to_db(r.true_peak), 2),
                    input_sample_peak_dbfs=round(lin_to_db(r.sample_peak), 2),
                    input_lra_lu=round(r.lra, 2),
                    gain_db=round(g, 2),
                    trimmed_start_s=secs(p.keep_start),
                    trimmed_end_s=secs(p.frames - p.keep_end),
                    **done,
                )
                for p, r, g, done in zip(parts, raw_parts, plan.part_gains_db, processing, strict=True)
            ),
            assets={
                n: AssetDetails(
                    file=a.path.name, input_lufs=round(a.loudness, 2), gain_db=round(plan.asset_gains_db[n], 2)
                )
                for n, a in loaded.items()
            },
            body_output=BodyOutput(
                integrated_lufs=round(body_out.integrated_lufs, 2), lra_lu=round(body_out.lra_lu, 2)
            ),
            codec_calibration=CodecCalibration(loudness_lu=round(d_lu, 3), true_peak_db=round(d_tp, 3)),
            leveler=leveler,
            denoise=denoise,
            limiter=LimiterFigures(
                ceiling_dbtp=round(plan.ceiling_db, 2),
                max_reduction_db=round(stats.reduction_db, 2),
                limited_seconds=round(stats.limited_frames / sr, 3),
            ),
            renders=len(renders),
            render_history=tuple(RenderPass(**r) for r in renders),
            seconds=dict(seconds),
            mp3=Mp3Format(codec=mp3_info.codec, sample_rate=mp3_info.sample_rate, channels=mp3_info.channels),
        ),
    )
    return result


__all__ = ["master"]
