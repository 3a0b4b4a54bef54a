"""atheris fuzz target: OTLP protobuf and JSON decoding, splitting with span limits,
and the config loader. Any exception other than the documented refusals is a crash.

Run (see tests/fuzz/README.md):  python tests/fuzz/fuzz_receive.py -max_total_time=600
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from sampler.config import ConfigError, parse_config
    from sampler.config.receivers import SpanLimitsConfig
    from sampler.receive.split import BadRequest, RequestSplitter, parse_json, parse_protobuf

_SPLITTER = RequestSplitter(
    max_spans_per_request=50, span_limits=SpanLimitsConfig(attribute_count_limit=4, attribute_value_length_limit=16)
)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0] % 3, data[1:]
    if selector == 2:
        with contextlib.suppress(ConfigError):
            parse_config(body.decode("utf-8", "replace"), "fuzz.yaml", {})
        return
    try:
        request = parse_json(body) if selector else parse_protobuf(body)
    except BadRequest:
        return
    _SPLITTER.split(request)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
