"""A store's book of its segment files (see format.py): which there are, oldest first, how many
bytes they take, and when one may go. Both stores keep one, the window's log (window/log.py)
and each exporter's persistent queue (forward/disk_queue/queue.py); what settles a segment's
records is each store's own (`Segment.settled`).

A segment is sealed once no more records will be appended to it: when the files move on to a
new segment, when the store closes, and from the start for a segment an earlier run left. A
sealed segment whose records are all settled is freed: the store deletes its file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from sampler.storage.format import SEGMENT_HEADER

_MAX_SEGMENT_BYTES = 64 << 20


def segment_bytes_for(max_bytes: int, smallest: int) -> int:
    """The segment size of a store capped at `max_bytes`: segments are freed whole, so an
    eighth of the cap (most of the cap stays usable), but at least `smallest` and at most
    64 MiB (files stay few)."""
    return min(_MAX_SEGMENT_BYTES, max(smallest, max_bytes // 8))


class Segment(Protocol):
    seq: int
    size: int  # of its file: the header and every record written to it
    sealed: bool

    def settled(self) -> bool:
        """Whether every record in it is settled (a sealed, settled segment is freed)."""
        ...


S = TypeVar("S", bound=Segment)


class SegmentBook(Generic[S]):
    """The segments of one store, by sequence number (oldest first), and their bytes."""

    def __init__(self, new: Callable[[int, int], S], free: Callable[[S], None]) -> None:
        """`new(seq, size)`: the store's record of a segment just started. `free(segment)`:
        delete its file (called once the segment is sealed and settled)."""
        self.segments: dict[int, S] = {}
        self.bytes = 0
        self._new = new
        self._free = free

    def add_left(self, segment: S) -> None:
        """A segment an earlier run left: sealed, and freed only once settled here."""
        segment.sealed = True
        self.segments[segment.seq] = segment
        self.bytes += segment.size

    def place(self, seq: int, offset: int, size: int) -> S:
        """A record of `size` bytes was written at `offset` of segment `seq`; that segment.
        A segment first written to seals the ones before it."""
        segment = self.segments.get(seq)
        if segment is None:
            self.seal()
            segment = self.segments[seq] = self._new(seq, SEGMENT_HEADER.size)
            self.bytes += SEGMENT_HEADER.size
        self.bytes += offset + size - segment.size
        segment.size = offset + size
        return segment

    def seal(self) -> None:
        """No more records go to the segments there are (the files moved on, or the store
        closes): each is freed as soon as it is settled."""
        for segment in list(self.segments.values()):
            if not segment.sealed:
                segment.sealed = True
                self.release(segment)

    def release(self, segment: S) -> None:
        """Free the segment if it is sealed and settled (after some of its records settled)."""
        if segment.sealed and segment.settled() and self.segments.get(segment.seq) is segment:
            del self.segments[segment.seq]
            self.bytes -= segment.size
            self._free(segment)

    @property
    def oldest(self) -> S | None:
        return next(iter(self.segments.values()), None)
