"""The decision caches, bounded by count with the oldest out first, and their file: versioned,
checksummed, written atomically."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampler.decide.cache import DecisionCache, DecisionFileError, decode, encode, load, save


def test_decision_cache_keeps_the_most_recent_ids() -> None:
    cache = DecisionCache(2)
    for trace_id in (b"a", b"b", b"c"):
        cache.add(trace_id)
    assert b"a" not in cache
    assert b"b" in cache and b"c" in cache
    assert len(cache) == 2


def test_decision_cache_of_size_zero_remembers_nothing() -> None:
    cache = DecisionCache(0)
    cache.add(b"a")
    assert b"a" not in cache
    assert len(cache) == 0


trace_ids = st.binary(min_size=16, max_size=16)
thresholds = st.none() | st.integers(min_value=0, max_value=2**56)
kept_entries = st.lists(
    st.tuples(trace_ids, st.binary(max_size=200), st.integers(min_value=0, max_value=2**63), thresholds)
)


@given(kept=kept_entries, dropped=st.lists(trace_ids))
def test_property_what_is_encoded_decodes_the_same_in_the_same_order(kept, dropped):
    assert decode(encode(kept, dropped)) == (kept, dropped)


@given(kept=kept_entries, dropped=st.lists(trace_ids, min_size=1), cut=st.integers(min_value=1))
def test_property_a_truncated_file_is_refused_never_misread(kept, dropped, cut):
    data = encode(kept, dropped)
    with pytest.raises(DecisionFileError):
        decode(data[: len(data) - 1 - cut % len(data)])


def test_save_then_load_through_a_real_file(tmp_path):
    path = tmp_path / "state" / "decisions.bin"
    kept = [(b"\x01" * 16, b"record", 1234, 0xE6666666666666), (b"\x03" * 16, b"", 5, None)]
    save(path, kept, [b"\x02" * 16])
    assert load(path) == (kept, [b"\x02" * 16])
    assert [p.name for p in path.parent.iterdir()] == ["decisions.bin"]  # no partial file left


def test_another_format_version_is_refused_by_name():
    data = bytearray(encode([], [b"\x02" * 16]))
    struct.pack_into("<I", data, 4, 3)
    with pytest.raises(DecisionFileError, match="format version 3; this daemon reads versions 1, 2"):
        decode(bytes(data))


def test_a_version_1_file_is_read_with_no_thresholds():
    # Version 1 as an earlier daemon wrote it: no threshold between bytes forwarded and record length.
    body = b"TSDC" + struct.pack("<II", 1, 1) + bytes([16]) + b"\x01" * 16 + struct.pack("<QI", 77, 3) + b"rec"
    body += struct.pack("<I", 1) + bytes([16]) + b"\x02" * 16
    data = body + struct.pack("<I", zlib.crc32(body))
    assert decode(data) == ([(b"\x01" * 16, b"rec", 77, None)], [b"\x02" * 16])


def test_a_flipped_byte_fails_the_checksum():
    data = bytearray(encode([(b"\x01" * 16, b"record", 5, None)], []))
    data[12] ^= 0x40
    with pytest.raises(DecisionFileError, match="checksum"):
        decode(bytes(data))


@pytest.mark.parametrize("data", [b"", b"TSDC", b"not a decision file at all", b"\x00" * 64])
def test_other_files_are_refused(data):
    with pytest.raises(DecisionFileError):
        decode(data)
