"""Trace affinity between worker processes: every fragment of a request goes to the worker that
owns its trace ID (spans/fragments.py), so each trace is decided whole by one worker.

The worker that received a request splits it as usual; `Router.take` then hands the fragments
owned by other workers to them, as bytes over a local stream socket (`PeerLink`), and takes its
own into its engine. The owners take theirs into their engines (`HandoffServer`).

How long the client waits depends on what an owner could say:
- By default an owner always has room, and the fragments are only as safe in its window as in
  the socket to it (a process that dies loses both). So the client is answered once the
  fragments are written to the owner's socket (HAND, no reply; the socket's buffer bounds how
  far the owner may fall behind), without waiting until the owner's process has been
  scheduled, read them and answered: on a busy machine that wait would be every request's.
- With block_on_overflow an owner may have no room, and a refusal must refuse the whole
  request: every owner first waits for room for its part (PREPARE), and only if all have room
  do they all take their parts (COMMIT); otherwise each lets its part go (ABORT), and the
  client retries. The client is answered after every owner took its part.
- With `confirm` (for stores that must hold the spans before the client is answered), every
  owner answers once it took its part (TAKE), before the client is answered.
A worker that stops receiving first asks every owner it handed fragments to for an answer
(SYNC): once answered, every earlier message on that socket is in that owner's window.

A message is a header (body length, kind, message number) and a body; TAKE, PREPARE, COMMIT and
SYNC get a REPLY with the same number: a status, the traces new to the owner, and a reason when
refused. COMMIT and ABORT name the PREPARE they conclude by its number. HAND and TAKE bodies
start with the receiver's protocol (an index into PROTOCOLS), for the owner's count of the traces
new to it (tail_sampler_received_traces_total).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple

from sampler.decide.engine import TailSampler
from sampler.receive.ingest import PROTOCOLS, RETRY_AFTER_SECONDS, WindowFull
from sampler.spans.fragments import FragmentDecoder, FragmentError, encode_fragments, owner_of
from sampler.spans.trace import DecodedBatch, TraceSpans
from sampler.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IBI")  # body length, kind, message number
_REPLY = struct.Struct("<BI")  # status, new traces; the reason follows
_TIMEOUT = struct.Struct("<d")  # PREPARE: how long the owner may wait for room, before the fragments
_NUMBER = struct.Struct("<I")  # COMMIT, ABORT: the PREPARE concluded
_PROTOCOL = struct.Struct("<B")  # HAND, TAKE: the receiver's protocol, an index into PROTOCOLS
_UNCOUNTED = 0x80  # in the protocol byte: a logs request, whose traces are not counted as received
REPLY, TAKE, PREPARE, COMMIT, ABORT, HAND, SYNC = range(7)
OK, REFUSED, FAILED = range(3)
# The longest a hand-over may take when the request carries no shorter deadline: an owner that
# does not answer by then is treated as unavailable (it is being restarted, or hangs).
HANDOFF_TIMEOUT_SECONDS = 5.0
# How long past its wait for room a prepared part is kept for its COMMIT or ABORT.
_PREPARED_GRACE_SECONDS = HANDOFF_TIMEOUT_SECONDS + 5.0
# How much a worker may have written to an owner that has not read it yet before a hand-over
# waits (the owner is busy with a request of its own): the kernel's socket buffers, then the
# stream's own. Small buffers would make every request wait for the owner's event loop.
_SOCKET_BUFFER_BYTES = 4 << 20
_WRITE_BUFFER_BYTES = 32 << 20
# A message larger than this is a bug or a stranger on the socket, never a request's fragments
# (the receivers bound a request's size far below it).
_MAX_MESSAGE_BYTES = 1 << 30


class OwnerUnavailable(WindowFull):
    """The worker owning some of the request's traces cannot take them now (it is restarting or
    stopping): the client is refused as for a full window, and retries."""

    result = "unavailable"


class Reply(NamedTuple):
    status: int
    new_traces: int
    reason: str
    number: int  # of the message answered


def _unavailable(owner: int, why: str) -> OwnerUnavailable:
    return OwnerUnavailable(
        f"worker {owner}, which decides some of these traces, is unavailable ({why}); retry in {RETRY_AFTER_SECONDS}s"
    )


class PeerLink:
    """This worker's connection to another worker's HandoffServer: one stream, many requests in
    flight, connected when first needed and again after it breaks."""

    def __init__(self, owner: int, path: str) -> None:
        self.owner = owner
        self._path = path
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._numbers = itertools.count(1)
        self._lock = asyncio.Lock()

    async def _connection(self, timeout: float) -> asyncio.StreamWriter:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            return writer
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, connected = await asyncio.wait_for(asyncio.open_unix_connection(self._path), timeout)
            except (OSError, TimeoutError) as exc:
                raise _unavailable(self.owner, f"cannot connect: {exc}") from None
            _widen(connected.get_extra_info("socket"), socket.SO_SNDBUF)
            connected.transport.set_write_buffer_limits(high=_WRITE_BUFFER_BYTES)
            self._writer = connected
            self._reader_task = asyncio.create_task(self._read_replies(reader, connected), name=f"handoff-{self.owner}")
            return connected

    async def _read_replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reason = "the connection closed"
        try:
            while True:
                length, _kind, number = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                body = await reader.readexactly(length)
                status, new_traces = _REPLY.unpack_from(body)
                waiter = self._pending.pop(number, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(Reply(status, new_traces, body[_REPLY.size :].decode(errors="replace"), number))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"the connection broke: {exc}" if isinstance(exc, ConnectionError) else reason
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            pending, self._pending = self._pending, {}
            for waiter in pending.values():
                if not waiter.done():
                    waiter.set_exception(_unavailable(self.owner, reason))

    async def call(self, kind: int, body: bytes, timeout: float) -> Reply:
        """Send one message and wait for its reply; OwnerUnavailable if none comes in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        writer = await self._connection(timeout)
        number = next(self._numbers) & 0xFFFFFFFF
        waiter: asyncio.Future[Reply] = loop.create_future()
        self._pending[number] = waiter
        writer.write(_HEADER.pack(len(body), kind, number))
        writer.write(body)
        try:
            await writer.drain()
            return await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise _unavailable(self.owner, f"no answer within {timeout:.1f}s") from None
        except ConnectionError as exc:
            raise _unavailable(self.owner, str(exc)) from None
        finally:
            self._pending.pop(number, None)

    async def hand(self, body: bytes, timeout: float) -> None:
        """Write one HAND message, waiting only while the socket's buffer is full (the owner is
        behind); OwnerUnavailable if the owner cannot be reached."""
        writer = await self._connection(timeout)
        writer.write(_HEADER.pack(len(body), HAND, 0))
        writer.write(body)
        try:
            await asyncio.wait_for(writer.drain(), timeout)
        except TimeoutError:
            raise _unavailable(self.owner, f"not reading for {timeout:.1f}s") from None
        except ConnectionError as exc:
            raise _unavailable(self.owner, str(exc)) from None

    async def sync(self, timeout: float) -> None:
        """Wait until the owner has taken everything written on this connection (SYNC). Without
        a connection there is nothing to wait for: what went on a broken one reached the owner or
        broke with it. Never connects anew: an owner that stopped may have left its socket to a
        restart (the supervisor keeps it), which would take the connection and answer nothing."""
        if not self.connected:
            return
        await self.call(SYNC, b"", timeout)

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def send(self, kind: int, body: bytes) -> None:
        """A message that gets no reply (ABORT); lost with the connection, which is harmless for it:
        the owner lets go of a connection's prepared parts when it closes."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(_HEADER.pack(len(body), kind, 0) + body)

    async def close(self) -> None:
        writer = self._writer
        self._writer = None
        if writer is not None:
            writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)


def _widen(sock: socket.socket | None, option: int) -> None:
    """Ask for a larger socket buffer (the kernel caps it at its maximum, net.core.[rw]mem_max)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER_BYTES)


async def _no_wait() -> bool:
    return True


# What the owner of traces does with a batch before its engine takes it: with durable window
# storage, append it to the window's log (Ingest.store); raises WindowFull when it cannot.
Store = Callable[[DecodedBatch, float], Awaitable[None]]


async def _nothing_to_store(batch: DecodedBatch, budget: float) -> None:
    return None


def _batch(fragments: Sequence[TraceSpans]) -> DecodedBatch:
    return DecodedBatch(traces={fragment.trace_id: fragment for fragment in fragments})


class Router:
    """Hands each request's fragments to the workers that own their traces; takes its own."""

    def __init__(
        self,
        index: int,
        workers: int,
        sampler: TailSampler,
        links: Mapping[int, PeerLink],
        metrics: Metrics,
        confirm: bool = False,
        store: Store = _nothing_to_store,
    ) -> None:
        """`confirm`: answer the client only once every owner confirmed it took its part.
        `store`: what this worker does with its own part before its engine takes it."""
        self.index = index
        self.workers = workers
        self._sampler = sampler
        self._links = links
        self._confirm = confirm
        self._store = store
        self._handed_spans = metrics.handoff_spans.labels("sent")

    async def take(self, batch: DecodedBatch, protocol: str, timeout: float | None, count_traces: bool = True) -> int:
        """Every fragment of the batch handed to its owner; how many traces were new to this worker
        (the owners count theirs). Raises WindowFull (no room; with block_on_overflow) or
        OwnerUnavailable, having taken none (but see HAND in the module's description)."""
        workers = self.workers
        parts: list[list[TraceSpans]] = [[] for _ in range(workers)]
        for trace_id, fragment in batch.traces.items():
            parts[owner_of(trace_id, workers)].append(fragment)
        local = _batch(parts[self.index])
        head = _PROTOCOL.pack(PROTOCOLS.index(protocol) | (0 if count_traces else _UNCOUNTED))
        remote = {
            owner: head + encode_fragments(part) for owner, part in enumerate(parts) if part and owner != self.index
        }
        sampler = self._sampler
        budget = HANDOFF_TIMEOUT_SECONDS if timeout is None else max(0.05, min(timeout, HANDOFF_TIMEOUT_SECONDS))
        if not remote:
            if not await sampler.wait_for_room(local, timeout):
                raise WindowFull(f"no room: the trace window is full; retry in {RETRY_AFTER_SECONDS}s")
            await self._store(local, budget)
            return sampler.ingest(local)
        if sampler.blocking:
            new_traces = await self._prepare_and_commit(local, remote, timeout, budget)
        else:
            # The other owners first: if one cannot take its part, nothing is taken here either.
            if self._confirm:
                await self._take_remote(remote, budget)
            else:
                await asyncio.gather(*(self._links[owner].hand(body, budget) for owner, body in remote.items()))
            new_traces = await self._take_local(local, budget)
        self._handed_spans.inc(batch.span_count - sum(fragment.span_count for fragment in local.traces.values()))
        return new_traces

    async def _take_local(self, local: DecodedBatch, budget: float) -> int:
        if not local.traces:
            return 0
        await self._store(local, budget)
        return self._sampler.ingest(local)

    async def _take_remote(self, remote: dict[int, bytes], budget: float) -> None:
        calls = [self._links[owner].call(TAKE, body, budget) for owner, body in remote.items()]
        replies = await asyncio.gather(*calls, return_exceptions=True)
        for owner, reply in zip(remote, replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            if reply.status != OK:
                raise _unavailable(owner, reply.reason)

    async def _prepare_and_commit(
        self, local: DecodedBatch, remote: dict[int, bytes], timeout: float | None, budget: float
    ) -> int:
        sampler = self._sampler
        prepare = _TIMEOUT.pack(sampler.wait_budget(timeout))  # the protocol follows, in remote[owner]
        owners = list(remote)
        # The owners wait for room within the request's budget; their replies may take a moment longer.
        calls = [self._links[owner].call(PREPARE, prepare + remote[owner], budget + 1.0) for owner in owners]
        room_here = sampler.wait_for_room(local, timeout) if local.traces else _no_wait()
        room, replies = await asyncio.gather(room_here, asyncio.gather(*calls, return_exceptions=True))
        refusal: BaseException | None = None
        prepared: dict[int, int] = {}  # owner -> the number of its PREPARE
        for owner, reply in zip(owners, replies, strict=True):
            if isinstance(reply, BaseException):
                refusal = refusal or reply
            elif reply.status == OK:
                prepared[owner] = reply.number
            else:
                refusal = refusal or (
                    WindowFull(reply.reason) if reply.status == REFUSED else _unavailable(owner, reply.reason)
                )
        if not room:
            refusal = WindowFull(f"no room: the trace window is full; retry in {RETRY_AFTER_SECONDS}s")
        if refusal is not None:
            for owner, number in prepared.items():
                self._links[owner].send(ABORT, _NUMBER.pack(number))
            raise refusal
        commits = await asyncio.gather(
            *(self._links[owner].call(COMMIT, _NUMBER.pack(number), budget) for owner, number in prepared.items()),
            return_exceptions=True,
        )
        new_traces = await self._take_local(local, budget)
        for owner, commit in zip(prepared, commits, strict=True):
            if isinstance(commit, BaseException) or commit.status != OK:
                # Past the point of no return: the other parts are taken. The client is told to
                # retry, and of what it sends again, the parts taken before are forwarded twice.
                log.error("worker %d did not take its prepared part of a request: %s", owner, commit)
                raise commit if isinstance(commit, BaseException) else _unavailable(owner, commit.reason)
        return new_traces

    async def flush(self, timeout: float) -> None:
        """Wait until every owner has taken all this worker handed it (SYNC on each connection)."""
        links = list(self._links.values())
        replies = await asyncio.gather(*(link.sync(timeout) for link in links), return_exceptions=True)
        for link, reply in zip(links, replies, strict=True):
            if isinstance(reply, BaseException):
                log.error("worker %d did not confirm the fragments handed to it: %s", link.owner, reply)

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self._links.values()))


class HandoffServer:
    """Takes the fragments other workers hand to this one (the owner) into its engine."""

    def __init__(
        self,
        listener: socket.socket,
        sampler: TailSampler,
        metrics: Metrics,
        admit: Callable[[socket.socket], bool] = lambda peer: True,
        store: Store = _nothing_to_store,
    ) -> None:
        """`admit`: whether the process that connected may hand fragments over. `store`: what this
        worker (the owner) does with a part before its engine takes it (see Router)."""
        self._listener = listener
        self._admit = admit
        self._store = store
        self._sampler = sampler
        self._decoder = FragmentDecoder()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._received_spans = metrics.handoff_spans.labels("received")
        self._received_traces = [metrics.received_traces.labels(protocol) for protocol in PROTOCOLS]

    async def start(self) -> None:
        # The reader's limit: a message is read in as few rounds as the socket allows, not 64 KiB at a time.
        self._server = await asyncio.start_unix_server(self._serve, sock=self._listener, limit=_SOCKET_BUFFER_BYTES)

    def _decode(self, body: bytes) -> tuple[DecodedBatch, int]:
        """The fragments of a HAND, TAKE or PREPARE body, and the receiver's protocol (an index)."""
        (protocol,) = _PROTOCOL.unpack_from(body)
        batch = _batch(self._decoder.decode(body[_PROTOCOL.size :]))
        batch.span_count = sum(fragment.span_count for fragment in batch.traces.values())
        return batch, protocol

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        if peer is None or not self._admit(peer):
            log.warning("refused a hand-over connection from a process that is not a worker of this daemon")
            writer.close()
            return
        _widen(peer, socket.SO_RCVBUF)
        self._connections.add(writer)
        loop = asyncio.get_running_loop()
        prepared: dict[int, tuple[DecodedBatch, int]] = {}
        waits: set[asyncio.Task[None]] = set()

        def reply(number: int, status: int, new_traces: int = 0, reason: str = "") -> None:
            body = _REPLY.pack(status, new_traces) + reason.encode()
            writer.write(_HEADER.pack(len(body), REPLY, number) + body)

        def forget(number: int) -> None:
            prepared.pop(number, None)

        async def wait_for_room(number: int, batch: DecodedBatch, protocol: int, timeout: float) -> None:
            if await self._sampler.wait_for_room(batch, timeout):
                prepared[number] = (batch, protocol)
                reply(number, OK)
            else:
                reply(number, REFUSED, 0, f"no room: the trace window is full; retry in {RETRY_AFTER_SECONDS}s")

        try:
            while True:
                length, kind, number = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                if length > _MAX_MESSAGE_BYTES:
                    log.error("closing a hand-over connection: a message of %d bytes announced", length)
                    return
                body = await reader.readexactly(length)
                try:
                    if kind == HAND:
                        self._take(*self._decode(body))
                    elif kind == TAKE:
                        batch, protocol = self._decode(body)
                        try:
                            await self._store(batch, HANDOFF_TIMEOUT_SECONDS)
                        except WindowFull as refusal:
                            reply(number, REFUSED, 0, str(refusal))
                        else:
                            reply(number, OK, self._take(batch, protocol))
                    elif kind == SYNC:
                        reply(number, OK)
                    elif kind == PREPARE:
                        (timeout,) = _TIMEOUT.unpack_from(body)
                        batch, protocol = self._decode(body[_TIMEOUT.size :])
                        task = asyncio.create_task(wait_for_room(number, batch, protocol, timeout))
                        waits.add(task)
                        task.add_done_callback(waits.discard)
                        # A part whose sender gave up waiting is never concluded: let it go.
                        loop.call_later(timeout + _PREPARED_GRACE_SECONDS, forget, number)
                    elif kind == COMMIT:
                        (concluded,) = _NUMBER.unpack_from(body)
                        ready = prepared.pop(concluded, None)
                        if ready is None:
                            reply(number, FAILED, 0, "nothing prepared under that number")
                        else:
                            # Taken even if the room found at PREPARE has gone meanwhile: the window
                            # then decides its oldest traces early, as for a batch too big to wait for.
                            try:
                                await self._store(ready[0], HANDOFF_TIMEOUT_SECONDS)
                            except WindowFull as refusal:
                                reply(number, FAILED, 0, str(refusal))
                            else:
                                reply(number, OK, self._take(*ready))
                    elif kind == ABORT:
                        (concluded,) = _NUMBER.unpack_from(body)
                        prepared.pop(concluded, None)
                    else:
                        reply(number, FAILED, 0, f"unknown message kind {kind}")
                except (FragmentError, struct.error) as exc:
                    log.error("refusing fragments handed over by another worker: %s", exc)
                    reply(number, FAILED, 0, str(exc))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # The connection's end as the loop stops, not an error: returning (rather than raising)
            # keeps asyncio's stream callback from logging one (it asks the task for its exception).
            pass
        finally:
            for task in waits:
                task.cancel()
            self._connections.discard(writer)
            writer.close()

    def _take(self, batch: DecodedBatch, protocol: int) -> int:
        self._received_spans.inc(batch.span_count)
        new_traces = self._sampler.ingest(batch)
        if not protocol & _UNCOUNTED:
            self._received_traces[protocol].inc(new_traces)
        return new_traces

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
