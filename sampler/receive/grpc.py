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
        outcome = await self._handle(data, context.time_remaining())
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

    async def _handle(self, data: bytes, remaining: float | None) -> bytes | tuple[grpc.StatusCode, str]:
        """The serialized response, or the status to abort with."""
        try:
            # Leave the client a moment to receive the refusal before its deadline.
            left = await self._ingest.room("grpc", None if remaining is None else remaining - 0.1)
            request = parse_protobuf(data)
            return (await self._ingest.accept(request, "grpc", left)).SerializeToString()
        except BadRequest as exc:
            self._ingest.count_failure("grpc", "invalid")
            return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except WindowFull as exc:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)

    async def start(self) -> None:
        max_bytes = int(self._config.max_recv_msg_size_mib * 1024 * 1024)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", max_bytes), ("grpc.so_reuseport", 0)])
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

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
