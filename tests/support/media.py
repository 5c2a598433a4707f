"""Media for tests, made with the project's real ffmpeg: lavfi tones, the committed real speech (jfk.wav), short
MP3s and cover images, and the independent meters tests check results with (ffmpeg's own EBU R128 scanner).

Test audio is generated at known levels with lavfi sources, as yt-dlp's tests do; only tiny real clips are
committed (tests/data, see its README).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from keylime_prod import ffmpeg, fsutil
from keylime_prod.audio.artefact import Loudness, Master, TimelineSegment

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
#: 11 s of real speech (whisper.cpp sample, MIT; see tests/data/README.md).
JFK = DATA / "jfk.wav"
#: The demo show's 3000x3000 cover.
COVER = REPO / "configs" / "assets" / "cover.jpg"


def run_ffmpeg(args: Sequence[str]) -> None:
    """Run the project's ffmpeg quietly, overwriting the output."""
    subprocess.run([ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def speech(
    out: Path,
    gain_db: float = 0.0,
    *,
    repeat: int = 1,
    lead: float = 1.5,
    trail: float = 1.5,
    rate: int = 48000,
    channels: int = 1,
    codec: str | None = None,
    noise_db: float = -65.0,
    filters: str = "",
) -> Path:
    """jfk.wav at ``gain_db``, looped ``repeat`` times, padded with lead/trail silence and a little pink room noise,
    written to ``out`` (its extension picks the container; ``codec`` the encoder; ``filters`` end the chain)."""
    chain = (
        f"[0:a]aloop=loop={repeat - 1}:size=2147483647,aresample={rate},volume={gain_db}dB,"
        f"adelay={int(lead * 1000)}:all=1,apad=pad_dur={trail}[s];"
        f"anoisesrc=color=pink:amplitude={10 ** (noise_db / 20):.6f}:seed=7:r={rate}[n];"
        f"[s][n]amix=inputs=2:duration=first:normalize=0{',' + filters if filters else ''},"
        f"aformat=channel_layouts={'mono' if channels == 1 else 'stereo'}[o]"
    )
    args = ["-i", str(JFK), "-filter_complex", chain, "-map", "[o]", "-ar", str(rate)]
    if codec:
        args += ["-c:a", codec]
    run_ffmpeg([*args, str(out)])
    return out


def tone(out: Path, freq: float = 440.0, seconds: float = 5.0, db: float = -20.0, channels: int = 2) -> Path:
    """A 44.1 kHz sine tone at ``db`` dBFS peak, written to ``out`` (its extension picks the container)."""
    amp = 10 ** (db / 20)
    layout = "mono" if channels == 1 else "stereo"
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}:sample_rate=44100",
            "-af", f"volume={amp:.6f},aformat=channel_layouts={layout}", str(out),
        ]
    )  # fmt: skip
    return out


def make_mp3(dest: Path, seconds: float = 12.0) -> Path:
    """A stereo 44.1 kHz 128 kbps CBR MP3 of a 330 Hz tone without tags, as the mastering stage writes it."""
    ffmpeg.run(
        ["-v", "error", "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}",
         "-af", "volume=-18dB", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "1",
         "-id3v2_version", "0", "-map_metadata", "-1", "-y", str(dest)]
    )  # fmt: skip
    return dest


def make_image(dest: Path, size: tuple[int, int] = (1400, 1400), mode: str = "RGB", fmt: str | None = None) -> Path:
    """An image with real content (a gradient) in ``mode``, saved as ``fmt`` (default: from the extension)."""
    w, h = size
    grad = Image.linear_gradient("L").resize((w, h))
    if mode == "RGB":
        img = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM), Image.new("L", (w, h), 90)))
    elif mode == "RGBA":
        img = Image.merge("RGBA", (grad, grad, grad, Image.new("L", (w, h), 128)))
    else:
        img = Image.merge("RGB", (grad, grad, grad)).convert(mode)
    img.save(dest, format=fmt)
    return dest


def sha256(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ebur128(path: Path) -> ffmpeg.EbuR128:
    """Independent loudness check: ffmpeg's own EBU R128 scanner with true peak on."""
    return ffmpeg.measure_ebur128(path)


def ebur128_curves(path: Path) -> tuple[list[float], list[float]]:
    """ffmpeg's own momentary and short-term loudness of ``path``, every 100 ms (its ``framelog``), to check the
    curves loudness.json records against a meter we did not write."""
    argv = ffmpeg.command(["-nostats", "-v", "verbose", "-i", str(path), "-af", "ebur128=framelog=verbose"])
    err = subprocess.run([*argv, "-f", "null", "-"], capture_output=True, check=True).stderr.decode()
    rows = [re.search(r"t: *[\d.]+ .* M: *(-?[\d.]+) S: *(-?[\d.]+)", ln) for ln in err.splitlines()]
    return [float(r.group(1)) for r in rows if r], [float(r.group(2)) for r in rows if r]


def write_fake_master(
    build: Path, mp3: Path, duration: float, episode_id: str, segments: Sequence[TimelineSegment] | None = None
) -> Master:
    """A ``master.json`` beside ``mp3`` as the mastering stage writes it, for tests of later stages that need a
    master but not mastering (default timeline: one body segment over the whole file)."""
    loud = Loudness(integrated_lufs=-16.0, lra_lu=3.0, true_peak_dbtp=-1.5, sample_peak_dbfs=-1.8)
    master = Master(
        episode_id=episode_id,
        mp3=mp3,
        report=build / "master.json",
        duration=duration,
        sample_rate=44100,
        channels=2,
        bitrate_kbps=128,
        audio_sha256=fsutil.sha256_file(mp3),
        segments=tuple(segments) if segments is not None else (TimelineSegment("body", 0.0, duration),),
        input_loudness=loud,
        output_loudness=loud,
        method="gain",
        gain_db=0.0,
        tools={"ffmpeg": ffmpeg.version()},
    )
    fsutil.write_json(master.report, master.to_json())
    return master
