"""The `tail-sampler` command: run, check, schema, simulate, explain, loadgen."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess  # nosec B404 # only to start our own load generator for --demo
import sys
from collections.abc import Sequence
from typing import Any

from sampler import __version__
from sampler.config.exporters import OtlpExporterConfig, OtlpHttpExporterConfig, ZipkinExporterConfig
from sampler.config.load import ADMIN_ENDPOINT_ENV, LoadedConfig, default_config_path, read_config
from sampler.config.model import Config
from sampler.config.types import ConfigError
from sampler.decide.journal import journal_paths
from sampler.extras import demo_extra_missing
from sampler.receive.credentials import describe_security
from sampler.telemetry.endpoints import ListenError
from sampler.telemetry.logs import MASK, configure_logging, mask_secrets
from sampler.workers.cpus import available_cpus


def _read(path: str) -> LoadedConfig | None:
    try:
        return read_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    except Exception as exc:  # a file the loader has no words for is still a bad config: exit 2, no traceback
        print(f"error: {path}: cannot load config ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def _load(path: str) -> Config | None:
    loaded = _read(path)
    return None if loaded is None else loaded.config


def _apply_admin_endpoint_flag(args: argparse.Namespace) -> None:
    """`--admin-endpoint` wins over the environment, which wins over the file: the flag sets the
    variable for this process, so that config reloads see the same endpoint."""
    if args.admin_endpoint:
        os.environ[ADMIN_ENDPOINT_ENV] = args.admin_endpoint


def _admin_source() -> str:
    return f" (from {ADMIN_ENDPOINT_ENV} or --admin-endpoint)" if os.environ.get(ADMIN_ENDPOINT_ENV) else ""


def cmd_run(args: argparse.Namespace) -> int:
    if args.demo:
        missing = demo_extra_missing("grpc")
        if missing:
            print(f"error: --demo {missing}", file=sys.stderr)
            return 2
    _apply_admin_endpoint_flag(args)
    loaded = _read(args.config)
    if loaded is None:
        return 2
    config = loaded.config
    log_level = args.log_level or config.logging.level
    configure_logging(log_level, config.logging.format)
    log = logging.getLogger("sampler")
    log.info("loaded config %s; admin endpoint %s%s", args.config, config.admin.endpoint, _admin_source())
    if loaded.translation is not None:
        log.info("%s is an OpenTelemetry Collector config, translated (`tail-sampler check` shows how)", args.config)
    for note in loaded.notes:
        log.warning("%s", note)
    workers = args.workers or config.workers or available_cpus()
    demo: subprocess.Popen[bytes] | None = None
    if workers == 1:
        # One process, no supervisor: the daemon as it always was.
        from sampler.daemon import Daemon, tune_garbage_collection
        from sampler.workers.shares import warn_orphaned_state

        warn_orphaned_state(config, 1)
        daemon = Daemon(config, config_path=args.config)
        tune_garbage_collection()

        def grpc_port() -> int | None:
            return daemon.grpc_receiver.port if daemon.grpc_receiver else None

    else:
        from sampler.workers.supervisor import Supervisor

        supervisor = Supervisor(config, args.config, workers, log_level)

        def grpc_port() -> int | None:
            return supervisor.ports.get("grpc")

    async def start_demo() -> None:
        nonlocal demo
        if not args.demo:
            return
        port = grpc_port()
        if port is None:
            log.error("--demo needs the OTLP/gRPC receiver enabled")
            return
        endpoint = f"127.0.0.1:{port}"
        log.info("--demo: sending checkout traces to %s with `tail-sampler loadgen`", endpoint)
        # A session of its own, so Ctrl-C reaches only the daemon, which stops the generator first.
        demo = subprocess.Popen(  # nosec B603 # fixed argv: this interpreter, our own module, no shell
            [sys.executable, "-m", "sampler", "loadgen", "--endpoint", endpoint, "--rate", str(args.demo_rate)],
            start_new_session=True,
            # Its summary line is for a user of loadgen itself; here it would be a stray line on exit.
            stdout=subprocess.DEVNULL,
        )

    async def stop_demo() -> None:
        if demo is not None and demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(demo.wait, 15)
            except subprocess.TimeoutExpired:
                demo.kill()

    try:
        if workers == 1:
            asyncio.run(daemon.run_until_signalled(start_demo, stop_demo))
        else:
            return asyncio.run(supervisor.run(start_demo, stop_demo))
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    _apply_admin_endpoint_flag(args)
    loaded = _read(args.config)
    if loaded is None:
        return 2
    if args.translate:
        if loaded.translation is None:
            print(
                f"error: {args.config} is not an OpenTelemetry Collector config, nothing to translate", file=sys.stderr
            )
            return 2
        print(loaded.translation, end="")
        return 0
    config = loaded.config
    sampling = config.tail_sampling
    print(f"{args.config}: valid")
    if loaded.translation is not None:
        print(
            "an OpenTelemetry Collector config, translated into the tail-sampler's own; "
            "`check --translate` prints the translation, to keep as the config from now on"
        )
        if loaded.notes:
            print("not carried over:")
            for note in loaded.notes:
                print(f"  - {note}")
    print(
        f"window: decision_wait={sampling.decision_wait:g}s "
        f"decision_wait_after_root_received={sampling.decision_wait_after_root_received:g}s "
        f"num_traces={sampling.num_traces} num_shards={sampling.num_shards} "
        f"memory_limit_mib={sampling.memory_limit_mib:g} max_spans_per_trace={sampling.max_spans_per_trace}"
    )
    storage = sampling.storage
    if storage is not None:
        every = f" every {storage.fsync_interval:g}s" if storage.fsync == "interval" else ""
        sync = f"fsync: {storage.fsync}{every}"
        print(
            f"durable window: requests acknowledged once in {storage.directory}/window ({sync}, "
            f"max_size_mib={storage.max_size_mib:g}, when_full: {storage.when_full})"
        )
    journal = journal_paths(sampling)
    if journal is not None:
        print(f"decisions: journaled in {journal[1]}, compacted into {journal[0]}")
    print("policies (a trace is kept when any samples it):")
    for policy_config in sampling.policies:
        policy = policy_config.build(lambda: 0.0)
        print(f"  - {policy.name}: {policy.describe()}")
    protocols = config.receivers.otlp.protocols
    print("receivers:")
    for name, protocol in (("grpc", protocols.grpc), ("http", protocols.http)):
        if protocol is not None:
            print(f"  - otlp/{name} on {protocol.endpoint} ({describe_security(protocol.tls, protocol.auth)})")
    if config.receivers.zipkin is not None:
        zipkin = config.receivers.zipkin
        print(f"  - zipkin on {zipkin.endpoint} ({describe_security(zipkin.tls, zipkin.auth)})")
    print("exporters:")
    for name, exporter in config.exporters.items():
        target = getattr(exporter, "endpoint", None) or getattr(exporter, "path", "")
        print(f"  - {name} -> {mask_secrets(target)}{_exporter_security(exporter)}")
    guarded = ""
    if config.admin.auth is not None:  # the admin endpoint has no TLS of its own
        guarded = f" ({describe_security(None, config.admin.auth)}; /healthz and /readyz open)"
    print(f"admin: /metrics, /healthz, /readyz on {config.admin.endpoint}{_admin_source()}{guarded}")
    print("  console at /, decision lookup at /api/v1/decisions/{trace_id}")
    print(f"workers: {config.workers or 'one per CPU the process may use'}")
    return 0


def _exporter_security(exporter: object) -> str:
    """TLS files and header names of a network exporter; header values are secrets and never shown."""
    tls = getattr(exporter, "tls", None)
    headers = getattr(exporter, "headers", None) or {}
    parts = []
    if isinstance(exporter, OtlpExporterConfig | OtlpHttpExporterConfig | ZipkinExporterConfig):
        if not exporter.uses_tls():
            parts.append("plaintext")
        elif isinstance(exporter, OtlpExporterConfig) and "://" not in exporter.endpoint:
            parts.append("TLS: a bare host:port is TLS, as in the Collector; tls.insecure: true for plaintext")
        else:
            parts.append("TLS")
    if tls is not None:
        if tls.ca_file:
            parts.append(f"CA {tls.ca_file}")
        if tls.cert_file:
            parts.append(f"client certificate {tls.cert_file}")
        if getattr(tls, "insecure_skip_verify", False):
            parts.append("server certificate NOT verified")
    if headers:
        parts.append("headers: " + ", ".join(f"{name}={MASK}" for name in headers))
    return f" ({'; '.join(parts)})" if parts else ""


def cmd_schema(args: argparse.Namespace) -> int:
    from sampler.config.schema import config_json_schema

    print(json.dumps(config_json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_loadgen(args: argparse.Namespace) -> int:
    missing = demo_extra_missing(args.protocol)
    if missing:
        print(f"error: loadgen {missing}", file=sys.stderr)
        return 2
    from sampler.tools.loadgen import LoadSettings, run_load

    configure_logging("warning")
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = LoadSettings(
        endpoint=args.endpoint,
        protocol=args.protocol,
        rate=args.rate,
        duration=args.duration,
        max_traces=args.traces,
        error_ratio=args.error_ratio,
        slow_ratio=args.slow_ratio,
        seed=args.seed,
    )
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sent = run_load(settings, stop)
    print(json.dumps(sent), flush=True)
    if sent["traces"] and not sent["delivered_spans"]:
        print(
            f"error: none of the {sent['traces']} traces' spans reached {args.endpoint} ({args.protocol}): "
            "is a receiver listening there? The SDK's log lines above say why",
            file=sys.stderr,
        )
        return 1
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


_ADMIN_ENDPOINT_HELP = (
    f"where /metrics, /healthz and /readyz listen; overrides ${ADMIN_ENDPOINT_ENV}, which overrides admin.endpoint"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tail-sampler", description="Tail-based sampling proxy for OpenTelemetry traces."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    default_config = os.environ.get("TAIL_SAMPLER_CONFIG") or str(default_config_path())
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", default=default_config, help="config file (default: %(default)s)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides logging.level")
    run.add_argument("--admin-endpoint", metavar="HOST:PORT", help=_ADMIN_ENDPOINT_HELP)
    run.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="worker processes (overrides the workers key; default: one per CPU the process may use)",
    )
    run.add_argument("--demo", action="store_true", help="also start a load generator that sends traces to this daemon")
    run.add_argument(
        "--demo-rate", type=float, default=20.0, help="traces per second for --demo (default: %(default)s)"
    )
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="validate a config and print what it would run")
    check.add_argument("--config", default=default_config, help="config file (default: %(default)s)")
    check.add_argument("--admin-endpoint", metavar="HOST:PORT", help=_ADMIN_ENDPOINT_HELP)
    check.add_argument(
        "--translate",
        action="store_true",
        help="for an OpenTelemetry Collector config: print the tail-sampler config it translates to",
    )
    check.set_defaults(handler=cmd_check)

    schema = commands.add_parser("schema", help="print a JSON Schema of the config file, for editors")
    schema.set_defaults(handler=cmd_schema)

    loadgen = commands.add_parser("loadgen", help="send realistic traces with the OpenTelemetry SDK")
    loadgen.add_argument(
        "--endpoint", default="127.0.0.1:4317", help="gRPC host:port or HTTP URL (default: %(default)s)"
    )
    loadgen.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    loadgen.add_argument("--rate", type=float, default=20.0, help="traces per second (default: %(default)s)")
    loadgen.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 runs until stopped")
    loadgen.add_argument("--traces", type=int, default=0, help="stop after this many traces; 0 for no limit")
    loadgen.add_argument("--error-ratio", type=float, default=0.03)
    loadgen.add_argument("--slow-ratio", type=float, default=0.05)
    loadgen.add_argument("--seed", type=int, default=None)
    loadgen.set_defaults(handler=cmd_loadgen)

    simulate = commands.add_parser("simulate", help="replay recorded traces through a config's policies, offline")
    simulate.add_argument("--config", default=default_config, help="config file (default: %(default)s)")
    simulate.add_argument(
        "--input", required=True, metavar="TRACES", help="OTLP/JSON, one export request per line (the file exporter's)"
    )
    simulate.add_argument("--compare", metavar="OTHER.yaml", help="also run this config's policies, side by side")
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")
    simulate.set_defaults(handler=cmd_simulate)

    explain = commands.add_parser(
        "explain", help="why a trace was kept, dropped or is still waiting: ask a running daemon, or decide a recording"
    )
    explain.add_argument("trace_id", metavar="TRACE_ID", help="32 hexadecimal digits")
    explain.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help=f"the running daemon's admin endpoint (default: ${ADMIN_ENDPOINT_ENV}, else 127.0.0.1:8888)",
    )
    explain.add_argument(
        "--token-file",
        metavar="FILE",
        help="a file holding the admin.auth token (default: $TAIL_SAMPLER_ADMIN_TOKEN, if set)",
    )
    explain.add_argument(
        "--input", metavar="TRACES", help="decide offline from this recording (OTLP/JSON lines, as for simulate)"
    )
    explain.add_argument(
        "--config", default=default_config, help="with --input: the config whose policies decide (default: %(default)s)"
    )
    explain.add_argument("--json", action="store_true", help="print the answer as JSON")
    explain.set_defaults(handler=cmd_explain)
    return parser


def cmd_simulate(args: argparse.Namespace) -> int:
    from sampler.tools.simulate import progress
    from sampler.tools.simulate.read import InputError, read_traces
    from sampler.tools.simulate.report import format_report, report_dict
    from sampler.tools.simulate.run import simulate

    paths = [args.config] if args.compare is None else [args.config, args.compare]
    configs = [config for config in (_load(path) for path in paths) if config is not None]
    if len(configs) != len(paths):
        return 2
    show = progress.wanted(args.input, sys.stderr, args.json)
    try:
        with progress.reading(args.input, sys.stderr, show) as bar:
            traces = read_traces(args.input, progress=bar.update)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = []
    for config, path in zip(configs, paths, strict=True):
        with progress.deciding(traces.traces.values(), path, sys.stderr, show) as deciding:
            results.append(simulate(config.tail_sampling, deciding, path))
    if args.json:
        print(json.dumps(report_dict(traces, results), indent=2))
    else:
        print(format_report(traces, results))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from sampler.decide.explain import TraceIdError, format_text, parse_trace_id

    try:
        trace_id = parse_trace_id(args.trace_id)
    except TraceIdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.input is not None:
        answer = _explain_recorded(args, trace_id)
        if answer is None:
            return 2
        if not answer:
            print(f"trace {trace_id.hex()} is not in {args.input}", file=sys.stderr)
            return 1
    else:
        from sampler.tools.ask_admin import AdminUnreachable, ask_decision

        endpoint = args.admin or os.environ.get(ADMIN_ENDPOINT_ENV) or "127.0.0.1:8888"
        try:
            token = _read_token(args.token_file)
            status, answer = ask_decision(endpoint, trace_id.hex(), token)
        except (AdminUnreachable, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if status != 200:
            print(f"{'error: ' if status != 404 else ''}{answer.get('error', f'HTTP {status}')}", file=sys.stderr)
            return 1 if status == 404 else 2
    print(json.dumps(answer, indent=2) if args.json else format_text(answer))
    return 0


def _read_token(path: str | None) -> str | None:
    if path is None:
        return os.environ.get("TAIL_SAMPLER_ADMIN_TOKEN") or None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip() or None


def _explain_recorded(args: argparse.Namespace, trace_id: bytes) -> dict[str, Any] | None:
    """The offline answer; {} when the file has no such trace, None after an error (printed)."""
    from sampler.tools.simulate.explain import explain_recorded
    from sampler.tools.simulate.read import InputError, read_traces

    config = _load(args.config)
    if config is None:
        return None
    try:
        traces = read_traces(args.input)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return explain_recorded(config.tail_sampling, traces, trace_id) or {}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader went away (`tail-sampler check | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
