import pytest

from berth.core.errors import InvalidArgument
from berth.core.plumbing import units


@pytest.mark.parametrize("size, text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1_240_000, "1.24MB"),
                                        (4_261_234, "4.26MB"), (77_800_000, "77.8MB"), (1_500_000_000, "1.5GB")])
def test_human_size_matches_docker(size, text):
    assert units.human_size(size) == text


@pytest.mark.parametrize("text, n", [("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("100", 100),
                                     ("10MB", 10 << 20), ("1.5g", int(1.5 * (1 << 30)))])
def test_ram_in_bytes(text, n):
    assert units.ram_in_bytes(text) == n


def test_ram_in_bytes_refuses_garbage():
    with pytest.raises(InvalidArgument, match="invalid size: 'lots'"):
        units.ram_in_bytes("lots")


@pytest.mark.parametrize("seconds, text", [(0.3, "Less than a second"), (1, "1 second"), (42, "42 seconds"),
                                           (65, "About a minute"), (600, "10 minutes"), (3700, "About an hour"),
                                           (7200 * 5, "10 hours"), (86400 * 3, "3 days"), (86400 * 21, "3 weeks"),
                                           (86400 * 90, "3 months"), (86400 * 800, "2 years")])
def test_human_duration(seconds, text):
    assert units.human_duration(seconds) == text


def test_times_round_trip():
    stamp = units.now_iso()
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 10
    assert units.parse_time(stamp).tzinfo is not None


def test_parse_since_forms():
    assert units.parse_since("1700000000") == 1700000000
    assert units.parse_since("10m", now=1000.0) == 400.0
    assert units.parse_since("1h30m", now=10000.0) == 10000.0 - 5400
    assert units.parse_since("2026-01-01T00:00:00Z") == 1767225600
    with pytest.raises(InvalidArgument):
        units.parse_since("yesterday")
