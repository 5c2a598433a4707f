"""How long any ffmpeg may take: nothing in keylime-prod waits on ffmpeg forever (docs/reliability.md).

Every module of the wrapper reads these at call time (``limits.PROBE_TIMEOUT_S``), so a test can lower one limit
for a second-long stall instead of the real minutes.
"""

from __future__ import annotations

#: ``ffmpeg -i FILE`` reads headers only: well under a second for any sane file. Past this it is stuck (a file on a
#: stalled share, a malformed stream it keeps scanning), and the stage must not wait on it forever.
PROBE_TIMEOUT_S = 60.0

#: A decode or encode of an excerpt (seconds to minutes of audio: the codec calibration, room tone, the alignment
#: window) takes seconds at most; past this ffmpeg is stuck and the stage must not wait on it forever.
EXCERPT_TIMEOUT_S = 120.0

#: A pass over a whole file (a filter or a full decode, no encode) runs at 100x real time and more even on a loaded
#: 2-core machine, so its limit is this much plus the file's own duration: a 100x margin on a long file, minutes on
#: a short one. Past it ffmpeg is stuck (a stalled share, a wedged filter) and must not hold us forever.
FULL_PASS_MIN_S = 120.0

#: A file that states no duration is given the longest it could play at 8 kbps (the lowest MP3 bitrate; ours are
#: 64 kbps and up): its size over this many bytes per second.
MIN_BYTES_PER_S = 1000

#: A streaming ffmpeg that neither takes nor gives a byte for this long while we wait on it is alive but stuck (a
#: wedged filter, a stalled share, an encoder that stopped reading): it is killed so the caller's error path reports
#: it. A wait is one read or write of about a second of audio, which a healthy ffmpeg serves in well under
#: a second even on a loaded 2-core machine: 300 s is a margin of hundreds.
STALL_TIMEOUT_S = 300.0

#: How long :func:`~keylime_prod.ffmpeg.stream.finish` waits for ffmpeg to exit once its input has ended: it only
#: flushes then, so a minute is generous; past it the process is wedged (nothing may wait forever).
FINISH_TIMEOUT_S = 120.0


def full_pass_timeout(duration_s: float | None) -> float:
    """The limit for one ffmpeg pass over ``duration_s`` seconds of audio (see :data:`FULL_PASS_MIN_S`)."""
    return FULL_PASS_MIN_S + max(0.0, duration_s or 0.0)
