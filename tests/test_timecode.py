"""Time codes are written and read in one place (keylime_prod/timecode.py); pure functions, literal cases."""

from __future__ import annotations

import pytest

from keylime_prod import timecode


def test_whole_seconds_round_down_so_a_seek_never_lands_after_the_chapter() -> None:
    assert timecode.hms(0.0) == "00:00:00"
    assert timecode.hms(59.999) == "00:00:59"
    assert timecode.hms(3723.9) == "01:02:03"
    assert timecode.hms(0.1 + 0.2 + 59.7 - 1e-9) == "00:01:00"  # float noise under a whole second is that second
    assert timecode.hms(100 * 3600) == "100:00:00"


def test_milliseconds_round_and_take_the_separator_srt_wants() -> None:
    assert timecode.hms_ms(3723.5) == "01:02:03.500"
    assert timecode.hms_ms(1.0004) == "00:00:01.000"
    assert timecode.hms_ms(59.9996, ",") == "00:01:00,000"
    assert timecode.hms_ms(-0.2) == "00:00:00.000"


@pytest.mark.parametrize(
    ("text", "seconds"), [("05:30", 330.0), ("01:02:03.5", 3723.5), ("42", 42.0), (" 1:00:00 ", 3600.0)]
)
def test_parse_reads_what_hms_writes_and_shorter_forms(text: str, seconds: float) -> None:
    assert timecode.parse(text) == seconds
    assert timecode.parse(timecode.hms_ms(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "1:xx", "1:2:3:4", "-5", "01:02,5"])
def test_parse_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        timecode.parse(text)
