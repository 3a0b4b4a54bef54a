"""OTLP/gRPC receiver: TraceService/Export, gzip accepted (gRPC decompresses)."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from sampler.config import GrpcProtocolConfig
from sampler.receive.decode import BadRequest, parse_protobuf
from sampler.receive.ingest import RETRY_AFTER_SECONDS, Ingest, WindowFull

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class GrpcReceiver:
    def __init__(self, config: GrpcProtocolConfig, ingest: Ingest) -> None:
        self._config = config
        self._ingest = ingest
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def _export(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            request = parse_protobuf(data)
        except BadRequest as exc:
            self._ingest.count_failure("grpc", "invalid")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        remaining = context.time_remaining()
        try:
            # Leave the client a moment to receive the refusal before its deadline.
            response = await self._ingest.accept(request, "grpc", None if remaining is None else remaining - 0.1)
        except WindowFull as exc:
            # RESOURCE_EXHAUSTED with RetryInfo is what OTLP clients retry after the given delay.
            status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=str(exc))
            status.details.add().Pack(
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS))
            )
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return response.SerializeToString()

    async def start(self) -> None:
        max_bytes = int(self._config.max_recv_msg_size_mib * 1024 * 1024)
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", max_bytes), ("grpc.so_reuseport", 0), *self._limit_options()],
            maximum_concurrent_rpcs=self._config.max_concurrent_rpcs or None,
        )
        # No deserializer: the handler parses, so a malformed body gets a clear INVALID_ARGUMENT.
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        server.add_generic_rpc_handlers((handler,))
        try:
            self.port = server.add_insecure_port(self._config.endpoint)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for OTLP/gRPC on {self._config.endpoint}: {exc}") from None
        await server.start()
        self._server = server

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
