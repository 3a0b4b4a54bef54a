"""The `ot` tracestate member: thresholds as the OpenTelemetry specification and the Collector's
pkg/sampling encode them, and the `th`/`rv` fields read and written."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from sampler.spans.tracestate import (
    MAX_THRESHOLD,
    OtFields,
    adjusted_count,
    encode_threshold,
    ot_fields,
    probability_to_threshold,
    threshold_probability,
    trace_id_randomness,
    with_threshold,
)


def tvalue(probability: float, precision: int = 14) -> str:
    return encode_threshold(probability_to_threshold(probability, precision))


# The specification's table (trace/tracestate-probability-sampling.md, "Converting floating-point
# probability to threshold value"): 1-in-N, then the threshold at precision 3, 4 and 5.
SPEC_TABLE = [
    (1, "0", "0", "0"),
    (2, "8", "8", "8"),
    (3, "aab", "aaab", "aaaab"),
    (4, "c", "c", "c"),
    (5, "ccd", "cccd", "ccccd"),
    (8, "e", "e", "e"),
    (10, "e66", "e666", "e6666"),
    (16, "f", "f", "f"),
    (100, "fd71", "fd70a", "fd70a4"),
    (1000, "ffbe7", "ffbe77", "ffbe76d"),
    (10000, "fff972", "fff9724", "fff97247"),
    (100000, "ffff584", "ffff583a", "ffff583a5"),
    (1000000, "ffffef4", "ffffef39", "ffffef391"),
]


@pytest.mark.parametrize(("one_in", "p3", "p4", "p5"), SPEC_TABLE)
def test_the_specifications_table(one_in: int, p3: str, p4: str, p5: str) -> None:
    assert [tvalue(1 / one_in, precision) for precision in (3, 4, 5)] == [p3, p4, p5]


def test_full_precision_as_the_sampling_libraries_write_it() -> None:
    assert tvalue(0.1) == "e6666666666666"  # not e6666666666668, a float's 1 - 0.1
    assert tvalue(0.05) == "f3333333333333"
    assert tvalue(1 / 3) == "aaaaaaaaaaaaac"  # pkg/sampling's own example of the last digit
    assert tvalue(0.25) == "c"  # the specification's 25 % example: ot=th:c
    assert probability_to_threshold(0.01, 5) == 0xFD70A400000000  # its 1 % example, "th:fd70a4"


# pkg/sampling's TestProbabilityToThresholdWithPrecision: (probability, exact, rounded at
# precision = significant digits of each).
GO_CASES = [
    (1 - 0x456789A / 2**28, "456789a", ["45678a", "45679", "4568", "456", "45", "4"]),
    (1 - 0x456789A / 2**40, "000456789a", ["00045678a", "00045679", "0004568", "000456", "00045", "0004"]),
    (
        1 - 0x789ABCDEF / 2**40,
        "0789abcdef",
        ["0789abcdef", "0789abcdf", "0789abce", "0789abd", "0789ac", "0789b", "078a", "079", "08"],
    ),
    (1 - 0x12345678 / 2**32, "12345678", ["1234568", "123456", "12345", "1234", "123", "12", "1"]),
    (1 - 0x80801 / 2**28, "0080801", ["00808", "008"]),
    (1.0, "0", ["0"]),
]


@pytest.mark.parametrize(("probability", "exact", "rounded"), GO_CASES, ids=[case[1] for case in GO_CASES])
def test_pkg_samplings_precision_cases(probability: float, exact: str, rounded: list[str]) -> None:
    assert tvalue(probability) == exact
    for expected in rounded:
        assert tvalue(probability, len(expected.lstrip("0"))) == expected


def test_very_small_probabilities_raise_the_precision() -> None:
    # pkg/sampling's ExampleProbabilityToThreshold_verysmall, at precision 3.
    probabilities = [2**-56, 2 * 2**-56, 3 * 2**-56, 4 * 2**-56, 8 * 2**-56, 16 * 2**-56]
    expected = ["ffffffffffffff", "fffffffffffffe", "fffffffffffffd", "fffffffffffffc", "fffffffffffff8"]
    assert [tvalue(p, 3) for p in probabilities] == [*expected, "fffffffffffff"]


def test_against_exact_arithmetic_on_random_probabilities() -> None:
    rng = random.Random(56)
    for _ in range(20_000):
        probability = rng.random() ** rng.choice((1, 4, 16))
        if probability * MAX_THRESHOLD < 1:
            continue
        exact = MAX_THRESHOLD - math.floor(Fraction(probability) * MAX_THRESHOLD + Fraction(1, 2))
        assert probability_to_threshold(probability) == exact, probability


def test_never_and_always() -> None:
    assert probability_to_threshold(0) == MAX_THRESHOLD
    assert probability_to_threshold(1) == 0
    assert encode_threshold(0) == "0"


def test_probability_and_adjusted_count_of_a_threshold() -> None:
    assert threshold_probability(0xC0000000000000) == 0.25
    assert adjusted_count(0xC0000000000000) == 4
    assert adjusted_count(0) == 1
    assert adjusted_count(probability_to_threshold(0.05)) == pytest.approx(20, rel=1e-12)


@pytest.mark.parametrize(
    ("state", "fields"),
    [
        ("ot=th:c", OtFields(0xC0000000000000, None)),
        ("ot=th:8", OtFields(0x80000000000000, None)),
        ("rojo=00f067aa0ba902b7,ot=rv:abcdef01234567;th:e666", OtFields(0xE6660000000000, 0xABCDEF01234567)),
        ("ot=th:0", OtFields(0, None)),
        ("ot=rv:6e6d1a75832a2f", OtFields(None, 0x6E6D1A75832A2F)),
        ("rojo=1", OtFields(None, None)),
        ("ot=th:zz", OtFields(None, None)),
        ("ot=th:C", OtFields(None, None)),  # uppercase is not a threshold
        ("ot=th:123456789abcdef", OtFields(None, None)),  # 15 digits
        ("ot=rv:abcdef", OtFields(None, None)),  # rv is exactly 14 digits
        ("ot=th:", OtFields(None, None)),
        ("", OtFields(None, None)),
    ],
)
def test_ot_fields(state: str, fields: OtFields) -> None:
    assert ot_fields(state) == fields


def test_with_threshold_keeps_other_members_and_fields() -> None:
    assert with_threshold("", 0xC0000000000000) == "ot=th:c"
    # The changed member moves to the front, as W3C Trace Context asks of a modified key.
    assert with_threshold("rojo=1,ot=th:8;rv:abcdef01234567", 0xE0000000000000) == "ot=th:e;rv:abcdef01234567,rojo=1"
    assert with_threshold("rojo=1", 0) == "ot=th:0,rojo=1"
    assert with_threshold("rojo=1,ot=th:8;rv:abcdef01234567", None) == "ot=rv:abcdef01234567,rojo=1"
    assert with_threshold("ot=th:8,rojo=1", None) == "rojo=1"


def test_trace_id_randomness_is_its_last_seven_bytes() -> None:
    assert trace_id_randomness(bytes.fromhex("0af7651916cd43dd8448eb211c80319c")) == 0x48EB211C80319C
