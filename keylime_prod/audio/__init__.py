"""The mastering stage as a package: one module per concern (see :mod:`.master` for the order of the steps).

``inputs`` (decode, probe, trim), ``plan`` (the loudness plan and the codec calibration), ``render`` (the streaming
render), ``measure`` (measuring the decoded MP3 while it is written, and its child process), ``loudness`` (the
BS.1770 meter and the true-peak limiter), ``master`` (the stage function and its report), ``kept`` (an archive
episode's published MP3 as its master).
"""

from .kept import keep_master
from .master import master
from .multitrack import master_tracks

__all__ = ["keep_master", "master", "master_tracks"]
