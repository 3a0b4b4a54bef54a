"""OTLP/gRPC receiver: TraceService/Export and LogsService/Export, gzip accepted (gRPC decompresses)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from sampler.config.receivers import GrpcProtocolConfig
from sampler.receive.credentials import ServerTls, TlsMaterial, TokenAuth, describe_security
from sampler.receive.ingest import RETRY_AFTER_SECONDS, Ingest, WindowFull
from sampler.receive.split import BadRequest
from sampler.receive.split_logs import parse_logs_protobuf
from sampler.telemetry.endpoints import ListenError

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
# Parses a request body and ingests it within the time left (None: no deadline); the serialized response.
_Accept = Callable[[bytes, float | None], Awaitable[bytes]]


def _server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """Credentials whose certificate gRPC asks for again on every handshake, so a reload is picked up."""

    def configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(material.private_key, material.cert_chain)], root_certificates=material.client_ca
        )

    served = tls.material.generation

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal served
        material = tls.refresh()
        if material.generation == served:
            return None  # gRPC keeps what it has
        served = material.generation
        return configuration(material)

    return grpc.dynamic_ssl_server_credentials(
        # gRPC documents None from the fetcher as "keep the current certificates"; the stubs do not.
        configuration(tls.material),
        fetch,  # type: ignore[arg-type]
        require_client_authentication=tls.client_auth,
    )


class GrpcReceiver:
    def __init__(self, config: GrpcProtocolConfig, ingest: Ingest) -> None:
        self._config = config
        self._ingest = ingest
        self._server: grpc.aio.Server | None = None
        self._auth: TokenAuth | None = None
        self.port = 0
        # Several worker processes listen on the same port (the `workers` key); the kernel spreads connections.
        self.reuse_port = False

    async def _export(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return await self._serve(data, context, self._accept_traces)

    async def _export_logs(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return await self._serve(data, context, self._accept_logs)

    async def _accept_traces(self, data: bytes, left: float | None) -> bytes:
        return (await self._ingest.accept(data, "grpc", left)).SerializeToString()

    async def _accept_logs(self, data: bytes, left: float | None) -> bytes:
        request = await self._ingest.decode(parse_logs_protobuf, data, "grpc", "protobuf ExportLogsServiceRequest")
        return (await self._ingest.accept_logs(request, "grpc", left)).SerializeToString()

    async def _serve(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes], accept: _Accept) -> bytes:
        if self._auth is not None:
            header = self._auth.header
            value = next((v for k, v in context.invocation_metadata() or () if k == header), None)
            refusal = self._auth.check(value if isinstance(value, str) else None)
            if refusal is not None:
                del data  # see below
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)
        outcome = await self._handle(data, context.time_remaining(), accept)
        # An abort raises, and its traceback keeps this frame alive until a GC pass (rare with a
        # full window): the request must not be in it by then, or refused requests pile up.
        del data
        if isinstance(outcome, bytes):
            return outcome
        code, message = outcome
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            # RESOURCE_EXHAUSTED with RetryInfo is what OTLP clients retry after the given delay.
            status = status_pb2.Status(code=code.value[0], message=message)
            status.details.add().Pack(
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS))
            )
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        await context.abort(code, message)

    async def _handle(
        self, data: bytes, remaining: float | None, accept: _Accept
    ) -> bytes | tuple[grpc.StatusCode, str]:
        """The serialized response, or the status to abort with."""
        try:
            # Leave the client a moment to receive the refusal before its deadline.
            left = await self._ingest.room("grpc", None if remaining is None else remaining - 0.1)
            return await accept(data, left)
        except BadRequest as exc:
            self._ingest.count_failure("grpc", "invalid")
            return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except WindowFull as exc:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)

    async def start(self) -> None:
        metrics = self._ingest.metrics
        if self._config.auth is not None:
            self._auth = TokenAuth(self._config.auth, "grpc", metrics)
        tls = ServerTls(self._config.tls, "grpc", metrics) if self._config.tls is not None else None
        max_bytes = int(self._config.max_recv_msg_size_mib * 1024 * 1024)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.so_reuseport", int(self.reuse_port)),
                *self._limit_options(),
            ],
            maximum_concurrent_rpcs=self._config.max_concurrent_rpcs or None,
        )
        # No deserializer: the handler parses, so a malformed body gets a clear INVALID_ARGUMENT.
        handlers = (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
            ),
            grpc.method_handlers_generic_handler(
                LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)}
            ),
        )
        server.add_generic_rpc_handlers(handlers)
        try:
            if tls is None:
                self.port = server.add_insecure_port(self._config.endpoint)
            else:
                self.port = server.add_secure_port(self._config.endpoint, _server_credentials(tls))
        except RuntimeError:
            raise ListenError("OTLP/gRPC", self._config.endpoint, "receivers.otlp.protocols.grpc.endpoint") from None
        await server.start()
        self._server = server
        if tls is not None or self._auth is not None:
            log.info("OTLP/gRPC on port %d: %s", self.port, describe_security(self._config.tls, self._config.auth))

    def _limit_options(self) -> list[tuple[str, int]]:
        config = self._config
        keepalive = config.keepalive.server_parameters
        options = []
        if config.max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", config.max_concurrent_streams))
        for name, seconds in (
            ("grpc.max_connection_idle_ms", keepalive.max_connection_idle),
            ("grpc.max_connection_age_ms", keepalive.max_connection_age),
            ("grpc.max_connection_age_grace_ms", keepalive.max_connection_age_grace),
        ):
            if seconds:
                options.append((name, max(1, int(seconds * 1000))))
        return options

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
