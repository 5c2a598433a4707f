"""The master of an archive episode kept as it was published (``[archive] remaster = false``).

An episode imported from an old feed already has a finished MP3. Re-encoding it would cost quality (a second lossy
generation) and change what subscribers already have, so by default its published MP3 *is* the master: copied
byte for byte, measured (BS.1770 integrated loudness, LRA, true peak, with the same streaming meter the mastering
stage uses), and reported in ``master.json`` like any master, with ``method = "kept"``, and in ``loudness.json``
(the production report's curves; "before" and "after" are the same audio). Whether it meets the show's
target is reported, not fixed: ``remaster = true`` sends it through the full audio path instead.

The result is a :class:`~keylime_prod.audio.artefact.Master` with one body segment over the whole file, so the later
stages (transcript, chapters, notes, tags, publish) treat it as any other.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .. import __version__, ffmpeg, fsutil
from ..config import AudioSettings, EpisodeConfig
from ..errors import AudioError
from ..layout import BuildLayout
from ..progress import ProgressFn, null_progress
from .artefact import KeptDetails, KeptSource, Loudness, Master, TargetCheck, TimelineSegment
from .inputs import check_file, decode
from .loudness import Meter, curves_of

log = logging.getLogger(__name__)


def _measure(path: Path, info: ffmpeg.Probe, progress: ProgressFn) -> tuple[Meter, int]:
    # The meter works on a 10 ms grid: rates such as 22050 Hz (old podcasts) are measured after resampling to
    # 48 kHz, which BS.1770's K-weighting is defined for anyway.
    sr = info.sample_rate if info.sample_rate % 100 == 0 else 48000
    meter = Meter(sr, min(info.channels, 2))
    expected = int((info.duration or 0) * sr) or 1
    for x in decode(path, sr, meter.channels, "the published MP3"):
        meter.add(x)
        progress("Measuring the published MP3", meter.frames, expected)
    return meter, sr


def keep_master(
    episode: EpisodeConfig, settings: AudioSettings, build_dir: Path, *, progress: ProgressFn | None = None
) -> Master:
    """Make ``build_dir/<id>.mp3`` a byte-for-byte copy of the episode's published MP3 and measure it.

    Raises :class:`AudioError` when the recording is not a single readable MP3 (keeping means no re-encoding, so
    anything else needs ``remaster = true``).
    """
    progress = progress or null_progress
    build_dir = Path(build_dir)
    if len(episode.recordings) != 1:
        raise AudioError(
            f"an archive episode kept as published has one recording, not {len(episode.recordings)}",
            where=episode.id,
            hint="set [archive] remaster = true to master several recordings",
        )
    src = Path(episode.recordings[0])
    info = check_file(src, "the published MP3")
    if info.codec != "mp3":
        raise AudioError(
            f"the published file is {info.codec}, not MP3: it cannot be kept as the master",
            where=src,
            hint="set [archive] remaster = true in the episode config to master it",
        )
    meter, sr = _measure(src, info, progress)
    m = meter.measure()
    duration = round(meter.frames / sr, 6)
    loud = Loudness(
        integrated_lufs=round(m.integrated_lufs, 2),
        lra_lu=round(m.lra_lu, 2),
        true_peak_dbtp=round(m.true_peak_dbtp, 2),
        sample_peak_dbfs=round(m.sample_peak_dbfs, 2),
    )
    layout = BuildLayout(build_dir, episode.id)
    final = layout.master_mp3
    with fsutil.atomic_path(final) as tmp:
        shutil.copyfile(src, tmp)
    off_lu = round(loud.integrated_lufs - settings.target_lufs, 2)
    over_db = round(loud.true_peak_dbtp - settings.true_peak_db, 2)
    # Apple: -16 LUFS +-1 LU, true peak <= -1 dBTP (docs/platform.md). Reported, never corrected here.
    meets = abs(off_lu) <= 1.0 and over_db <= 0.0
    size = final.stat().st_size
    result = Master(
        episode_id=episode.id,
        mp3=final,
        report=layout.master_json,
        duration=duration,
        sample_rate=info.sample_rate,
        channels=info.channels,
        bitrate_kbps=round(size * 8 / duration / 1000) if duration > 0 else 0,
        audio_sha256=fsutil.sha256_file(final),
        segments=(TimelineSegment("body", 0.0, duration, 0.0, (src.name,)),),
        input_loudness=loud,
        output_loudness=loud,
        method="kept",
        gain_db=0.0,
        settings={"remaster": False, "target_lufs": settings.target_lufs, "true_peak_db": settings.true_peak_db},
        tools={"keylime-prod": __version__, "ffmpeg": ffmpeg.version()},
        pieces=(TimelineSegment("part-1", 0.0, duration, 0.0, (src.name,)),),
        details=KeptDetails(
            kept=KeptSource(source=src.name, codec=info.codec, bytes=size, re_encoded=False),
            target=TargetCheck(off_target_lu=off_lu, true_peak_over_db=over_db, meets_target=meets),
        ),
    )
    # The production report's curves, as the mastering stage writes them: before and after are the same audio here
    # (nothing was done to it), so one measurement serves both. master.json last, so a build that has it has both.
    curves_of(meter.k_energy).write(layout.loudness_json)
    result.write()
    log.log(
        logging.INFO if meets else logging.WARNING,
        "%s: kept as published: %.2f LUFS, %.2f dBTP (%s; set [archive] remaster = true to master it)",
        episode.id, loud.integrated_lufs, loud.true_peak_dbtp,
        "meets the target" if meets else f"{off_lu:+.1f} LU from {settings.target_lufs:g} LUFS",
    )  # fmt: skip
    return result
