"""Child process that measures an MP3 while it is being encoded (see ``audio._ChildFollower``).

Usage (internal): ``python -m keylime_prod._verify_child MP3 SAMPLE_RATE CHANNELS OUT_PICKLE``. Reads ``done`` from
stdin when the encoder has finished; end of stdin without it means abort.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from pathlib import Path

from .audio import _FollowingMeter
from .errors import KeylimeError


def main(argv: list[str]) -> int:
    """Follow the file, wait for ``done``, write the pickled meter; return the exit code."""
    path, sr, ch, out = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    # LAME is the critical path: the verifier (and the decoder it starts) takes the CPU it leaves over.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    follower = _FollowingMeter(path, sr, ch)
    if sys.stdin.readline().strip() != "done":
        follower.abort()
        return 2
    try:
        meter = follower.finish()
    except KeylimeError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    with open(out, "wb") as f:
        pickle.dump(meter, f, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
