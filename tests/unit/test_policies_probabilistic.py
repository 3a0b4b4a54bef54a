"""probabilistic: OpenTelemetry consistent probability sampling by default (the trace's randomness
against a threshold), and in mode hash_seed FNV-1a-64 of salt + trace ID against a threshold, as
the Collector computes it.

The parity tests (hash_seed) build a small Go program (standard library only) that computes
the Collector's hash and threshold with Go's own hash/fnv and math/big, and
compare its decisions with ours, ID by ID.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision, Policy, TraceView, Weight
from sampler.policies.probabilistic import ProbabilisticPolicy, fnv1a_64
from sampler.receive.split import RequestSplitter
from sampler.spans.tracestate import adjusted_count, probability_to_threshold
from tests.peers import unavailable
from tests.support import make_request
from tests.unit.helpers import config_errors, make_policy

DEFAULT_SALT = "default-hash-seed"


def _views(trace_ids: list[bytes]) -> list[TraceView]:
    """One view per trace ID, decoded from a real request with one span per trace."""
    spans = [Span(trace_id=tid, span_id=(index + 1).to_bytes(8, "big")) for index, tid in enumerate(trace_ids)]
    traces = RequestSplitter().split(make_request(spans)).traces
    return [TraceView(traces[tid]) for tid in trace_ids]


def _policy(percentage: float, salt: str = "") -> Policy:
    """A probabilistic policy in the Collector's hash mode."""
    settings_: dict[str, Any] = {"sampling_percentage": percentage, "mode": "hash_seed"}
    if salt:
        settings_["hash_salt"] = salt
    policy = make_policy("probabilistic", settings_)
    assert isinstance(policy, ProbabilisticPolicy)
    return policy


def _random_ids(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(count)]


# --- consistent probability (the default) -----------------------------------------


def test_the_default_keeps_exactly_the_traces_whose_randomness_reaches_the_threshold() -> None:
    trace_ids = _random_ids(5000, seed=11)
    policy = make_policy("probabilistic", {"sampling_percentage": 5})
    threshold = probability_to_threshold(0.05)
    for view, trace_id in zip(_views(trace_ids), trace_ids, strict=True):
        sampled = policy.evaluate(view) is Decision.SAMPLED
        assert sampled is (int.from_bytes(trace_id[9:], "big") >= threshold)
        if sampled:
            assert policy.weight() == Weight(threshold, adjusted_count(threshold))


def test_an_explicit_randomness_value_overrides_the_trace_id() -> None:
    trace_id = bytes(15) + b"\x01"  # R from the ID: 1, below any threshold
    span = Span(trace_id=trace_id, span_id=b"\x01" * 8, trace_state="ot=rv:ffffffffffffff")
    (trace,) = RequestSplitter().split(make_request([span])).traces.values()
    policy = make_policy("probabilistic", {"sampling_percentage": 1})
    assert policy.evaluate(TraceView(trace)) is Decision.SAMPLED


def test_sampling_precision_rounds_the_threshold() -> None:
    policy = make_policy("probabilistic", {"sampling_percentage": 10, "sampling_precision": 4})
    (view,) = _views([bytes(8) + b"\xff" * 8])
    assert policy.evaluate(view) is Decision.SAMPLED
    weight = policy.weight()
    assert weight is not None and weight.threshold == 0xE6660000000000


def test_consistent_modes_keep_supersets_as_the_percentage_grows() -> None:
    views = _views(_random_ids(3000, seed=5))
    kept = []
    for percentage in (1, 5, 20):
        policy = make_policy("probabilistic", {"sampling_percentage": percentage})
        kept.append({i for i, v in enumerate(views) if policy.evaluate(v) is Decision.SAMPLED})
    assert kept[0] < kept[1] < kept[2]


def test_hash_salt_belongs_to_hash_seed_mode() -> None:
    body = {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 5, "hash_salt": "x"}}
    ((loc, kind, message),) = config_errors(body)
    assert kind == "value_error" and "Set mode: hash_seed" in message


# --- our own properties (hash_seed) -----------------------------------------------


def test_fnv1a_64_known_vectors() -> None:
    # From the FNV reference test suite (draft-eastlake-fnv).
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8
    # Hashing continues from a state: salt first, then the trace ID.
    assert fnv1a_64(b"bar", fnv1a_64(b"foo")) == fnv1a_64(b"foobar")


@settings(max_examples=150, deadline=None)
@given(
    trace_id=st.binary(min_size=16, max_size=16).filter(any),
    percentage=st.floats(min_value=0, max_value=100, allow_nan=False),
    salt=st.text(max_size=20),
)
def test_same_trace_id_same_decision_across_instances(trace_id: bytes, percentage: float, salt: str) -> None:
    first, second = _policy(percentage, salt), _policy(percentage, salt)
    (view,) = _views([trace_id])
    (other_view,) = _views([trace_id])
    decision = first.evaluate(view)
    assert second.evaluate(other_view) is decision
    assert first.evaluate(other_view) is decision  # and evaluating again changes nothing


def test_empty_salt_means_the_default_salt() -> None:
    views = _views(_random_ids(500, seed=7))
    implicit, explicit = _policy(30), _policy(30, DEFAULT_SALT)
    assert [implicit.evaluate(v) for v in views] == [explicit.evaluate(v) for v in views]
    other = _policy(30, "another-salt")
    assert [implicit.evaluate(v) for v in views] != [other.evaluate(v) for v in views]


@pytest.fixture(scope="module")
def random_views() -> list[TraceView]:
    return _views(_random_ids(20_000, seed=20240601))


@pytest.mark.parametrize(("percentage", "salt"), [(1, ""), (10, ""), (33.3, "tenant-a"), (50, ""), (90, "x")])
def test_kept_ratio_is_close_to_the_percentage(random_views: list[TraceView], percentage: float, salt: str) -> None:
    policy = _policy(percentage, salt)
    kept = sum(policy.evaluate(view) is Decision.SAMPLED for view in random_views)
    assert abs(100 * kept / len(random_views) - percentage) <= 1.5


def test_zero_and_hundred_percent(random_views: list[TraceView]) -> None:
    none, every = _policy(0), _policy(100)
    assert all(none.evaluate(view) is Decision.NOT_SAMPLED for view in random_views[:2000])
    assert all(every.evaluate(view) is Decision.SAMPLED for view in random_views[:2000])


def test_higher_percentage_keeps_a_superset() -> None:
    views = _views(_random_ids(2000, seed=3))
    low, high = _policy(10), _policy(20)
    kept_low = {i for i, v in enumerate(views) if low.evaluate(v) is Decision.SAMPLED}
    kept_high = {i for i, v in enumerate(views) if high.evaluate(v) is Decision.SAMPLED}
    assert kept_low < kept_high


@pytest.mark.parametrize(
    ("settings_", "loc", "kind"),
    [
        (None, ("probabilistic",), "missing"),
        ({}, ("probabilistic", "sampling_percentage"), "missing"),
        ({"sampling_percentage": -0.1}, ("probabilistic", "sampling_percentage"), "greater_than_equal"),
        ({"sampling_percentage": 100.01}, ("probabilistic", "sampling_percentage"), "less_than_equal"),
        ({"sampling_percentage": "half"}, ("probabilistic", "sampling_percentage"), "float_parsing"),
        ({"sampling_percentage": 5, "hash_salt": 5}, ("probabilistic", "hash_salt"), "string_type"),
        ({"sampling_percentage": 5, "salt": "x"}, ("probabilistic", "salt"), "extra_forbidden"),
    ],
)
def test_config_errors(settings_: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "baseline", "type": "probabilistic"}
    if settings_ is not None:
        body["probabilistic"] = settings_
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]


# --- parity with the Collector, checked against Go itself ----------------------------

# The Collector's probabilistic sampler (processor/tailsamplingprocessor/internal/sampling/probabilistic.go),
# reduced to the standard library. Input lines: "case<TAB>salt<TAB>percentage" starts a policy,
# "id<TAB>hex" asks for a decision. Output: "threshold<TAB>n" per case, "0|1<TAB>hash" per id.
GO_PROGRAM = r"""
package main

import (
	"bufio"
	"encoding/hex"
	"hash/fnv"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
)

func calculateThreshold(ratio float64) uint64 {
	boundary := new(big.Float).SetInt(new(big.Int).SetUint64(math.MaxUint64))
	res, _ := boundary.Mul(boundary, big.NewFloat(ratio)).Int(nil)
	return res.Uint64()
}

func hashTraceID(salt string, b []byte) uint64 {
	hasher := fnv.New64a()
	_, _ = hasher.Write([]byte(salt))
	_, _ = hasher.Write(b)
	return hasher.Sum64()
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	salt := ""
	var threshold uint64
	for in.Scan() {
		fields := strings.Split(in.Text(), "\t")
		switch fields[0] {
		case "case":
			salt = fields[1]
			if salt == "" {
				salt = "default-hash-seed"
			}
			percentage, err := strconv.ParseFloat(fields[2], 64)
			if err != nil {
				panic(err)
			}
			threshold = calculateThreshold(percentage / 100)
			out.WriteString("threshold\t" + strconv.FormatUint(threshold, 10) + "\n")
		case "id":
			id, err := hex.DecodeString(fields[1])
			if err != nil || len(id) != 16 {
				panic("bad trace id: " + fields[1])
			}
			h := hashTraceID(salt, id)
			sampled := "0"
			if h <= threshold {
				sampled = "1"
			}
			out.WriteString(sampled + "\t" + strconv.FormatUint(h, 10) + "\n")
		}
	}
}
"""


@dataclass(frozen=True)
class GoCase:
    threshold: int
    sampled: list[bool]
    hashes: list[int]


GoOracle = Callable[[list[tuple[str, float]], list[bytes]], list[GoCase]]


def _go_env(cache: Path | None) -> dict[str, str]:
    env = dict(os.environ, GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="-mod=mod", CGO_ENABLED="0")
    if cache is not None:
        env["GOCACHE"] = str(cache)
    return env


@pytest.fixture(scope="module")
def go_oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoOracle]:
    go = shutil.which("go")
    if go is None:
        unavailable("a Go toolchain", "`go` is not on PATH: the Collector parity check builds a Go program")
    workdir = tmp_path_factory.mktemp("go-probabilistic")
    (workdir / "main.go").write_text(GO_PROGRAM)
    binary = workdir / "probabilistic"
    build = [go, "build", "-o", str(binary), "main.go"]
    result = subprocess.run(build, cwd=workdir, env=_go_env(None), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:  # e.g. an unwritable default build cache: use a private one
        cache = workdir / "gocache"
        result = subprocess.run(build, cwd=workdir, env=_go_env(cache), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"go build failed:\n{result.stdout}{result.stderr}"

    def run(cases: list[tuple[str, float]], trace_ids: list[bytes]) -> list[GoCase]:
        lines = []
        for salt, percentage in cases:
            lines.append(f"case\t{salt}\t{percentage!r}")
            lines.extend(f"id\t{tid.hex()}" for tid in trace_ids)
        answer = subprocess.run(
            [str(binary)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60, check=True
        ).stdout.splitlines()
        results = []
        step = len(trace_ids) + 1
        for index in range(len(cases)):
            block = answer[index * step : (index + 1) * step]
            label, threshold = block[0].split("\t")
            assert label == "threshold"
            rows = [line.split("\t") for line in block[1:]]
            results.append(GoCase(int(threshold), [row[0] == "1" for row in rows], [int(row[1]) for row in rows]))
        assert len(results) == len(cases)
        return results

    yield run


PARITY_CASES = [
    ("", 0.1),
    ("", 5),
    ("", 33.3),
    ("", 50),
    ("", 99.9),
    (DEFAULT_SALT, 5),
    ("tenant-a", 0.1),
    ("tenant-a", 33.3),
    ("tenant-a", 99.9),
    ("ünïcode-salt", 12.5),
    ("", 100),
]


def test_decisions_match_the_collector_on_random_trace_ids(go_oracle: GoOracle) -> None:
    trace_ids = _random_ids(2000, seed=42) + [b"\xff" * 16, b"\x00" * 15 + b"\x01", bytes(range(16))]
    views = _views(trace_ids)
    for (salt, percentage), go in zip(PARITY_CASES, go_oracle(PARITY_CASES, trace_ids), strict=True):
        salt_bytes = (salt or DEFAULT_SALT).encode()
        assert go.hashes == [fnv1a_64(salt_bytes + tid) for tid in trace_ids], f"hash differs for salt {salt!r}"
        policy = _policy(percentage, salt)
        ours = [policy.evaluate(view) is Decision.SAMPLED for view in views]
        mismatches = [tid.hex() for tid, a, b in zip(trace_ids, ours, go.sampled, strict=True) if a != b]
        assert not mismatches, f"salt {salt!r}, {percentage}%: decisions differ for {mismatches[:5]}"
        assert 0 < sum(go.sampled) <= len(trace_ids)


# Trace IDs built (by lattice reduction on FNV-1a's multiply/xor steps) so that their hash
# lands exactly on a threshold. (salt, percentage, trace ID, its hash, Go's threshold, Go's decision)
Boundary = tuple[str, float, str, int, int, bool]

EXACT_BOUNDARIES: list[Boundary] = [
    # At 50 % both sides agree on the threshold, 2**63 - 1: the comparison is "hash <= threshold".
    ("", 50, "06023905027a000103071f3c1d060500", 2**63 - 1, 2**63 - 1, True),
    ("", 50, "021f051b020a07020f0d000a0d0b0201", 2**63, 2**63 - 1, False),
    ("tenant-a", 33.3, "07090f13060f1f0d050a1e1603040500", 6142765776545279999, 6142765776545279999, True),
    ("tenant-a", 0.1, "000108081e351e02003f081b04021711", 18446744073709551, 18446744073709551, True),
]

# Here Go's threshold (float64 ratio, 64-bit big.Float product) and ours differ by a few units.
ROUNDING_BOUNDARIES: list[Boundary] = [
    ("", 5, "010c0a0d053d04010b091a04020f0c1e", 922337203685477631, 922337203685477631, True),
    ("tenant-a", 33.3, "0117000009190005030f09033d043c0e", 6142765776545280163, 6142765776545279999, False),
    ("tenant-a", 99.9, "000401380006061a0403190c073f000b", 18428297329635844095, 18428297329635844095, True),
    ("tenant-a", 0.1, "0509037e07147d0c041c0f7a03070201", 18446744073709552, 18446744073709551, False),
]


def _boundary_id(boundary: Boundary) -> str:
    salt, percentage, _, _, _, sampled = boundary
    return f"{salt or 'default'}-{percentage}-{'sampled' if sampled else 'not_sampled'}"


@pytest.mark.parametrize("boundary", EXACT_BOUNDARIES + ROUNDING_BOUNDARIES, ids=_boundary_id)
def test_boundary_ids_are_where_they_claim(go_oracle: GoOracle, boundary: Boundary) -> None:
    salt, percentage, hex_id, hash_value, threshold, sampled = boundary
    trace_id = bytes.fromhex(hex_id)
    assert fnv1a_64((salt or DEFAULT_SALT).encode() + trace_id) == hash_value
    (go,) = go_oracle([(salt, percentage)], [trace_id])
    assert (go.threshold, go.hashes, go.sampled) == (threshold, [hash_value], [sampled])


@pytest.mark.parametrize("boundary", EXACT_BOUNDARIES, ids=_boundary_id)
def test_decisions_match_the_collector_exactly_at_the_threshold(boundary: Boundary) -> None:
    salt, percentage, hex_id, _, _, sampled = boundary
    (view,) = _views([bytes.fromhex(hex_id)])
    assert (_policy(percentage, salt).evaluate(view) is Decision.SAMPLED) is sampled


def test_decisions_match_the_collector_at_rounded_thresholds() -> None:
    mismatches = []
    for salt, percentage, hex_id, _, _, go_sampled in ROUNDING_BOUNDARIES:
        (view,) = _views([bytes.fromhex(hex_id)])
        ours = _policy(percentage, salt).evaluate(view) is Decision.SAMPLED
        if ours != go_sampled:
            mismatches.append(f"{salt or 'default'} {percentage}%: Go {go_sampled}, ours {ours}")
    assert not mismatches, mismatches


# A trace ID whose FNV-1a-64 hash with the default salt is 0.
HASH_ZERO_ID = "02090a0978020002310b1c1b0b0c3906"


def test_hash_zero_id_is_sampled_by_the_collector_at_zero_percent(go_oracle: GoOracle) -> None:
    (go,) = go_oracle([("", 0)], [bytes.fromhex(HASH_ZERO_ID)])
    assert (go.threshold, go.hashes, go.sampled) == (0, [0], [True])


def test_zero_percent_matches_the_collector_for_hash_zero() -> None:
    (view,) = _views([bytes.fromhex(HASH_ZERO_ID)])
    assert _policy(0).evaluate(view) is Decision.SAMPLED
