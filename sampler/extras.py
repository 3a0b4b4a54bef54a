"""Features that need an optional extra of the package, and the message that names it.

The daemon's data path needs no OpenTelemetry SDK. The `demo` extra (the SDK and its OTLP
exporters) serves `loadgen`, `run --demo` and the daemon's traces of itself (telemetry.traces);
without it those fail up front with this message instead of an ImportError deep in a thread."""

from __future__ import annotations

from importlib.util import find_spec

DEMO_EXTRA = "demo"


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def demo_extra_missing(protocol: str) -> str | None:
    """Why the SDK's OTLP exporter for `protocol` ("grpc" or "http") cannot be used here, naming the
    extra that installs it; None when it can."""
    modules = ("opentelemetry.sdk", f"opentelemetry.exporter.otlp.proto.{protocol}")
    missing = [module for module in modules if not _importable(module)]
    if not missing:
        return None
    return (
        f"needs the OpenTelemetry SDK and its OTLP/{protocol} exporter, which are not installed "
        f"({', '.join(missing)}): install the `{DEMO_EXTRA}` extra, "
        f"e.g. pip install 'tail-sampler[{DEMO_EXTRA}]' (or -e '.[{DEMO_EXTRA}]' in a checkout)"
    )
