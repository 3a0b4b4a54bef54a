"""What the supervisor tells a worker when it starts it: the plan on its command line, the config
text on its stdin; and the index its log lines carry. Kept apart from worker.py, so that the
supervisor never imports the daemon (nor gRPC) itself."""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass

# A worker's exit status for a start-up error (an endpoint it cannot listen on), as the command's.
START_ERROR = 2
# The config text on stdin: its length, then the UTF-8 text.
CONFIG_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class WorkerPlan:
    """What the supervisor tells a worker on its command line."""

    index: int
    workers: int
    config_path: str
    ports: dict[str, int]  # the receiver ports the supervisor holds, by receiver
    handoff_fd: int  # this worker's hand-over socket, listening
    admin_fd: int  # this worker's admin socket, listening
    peers: dict[int, str]  # the other workers' hand-over sockets, by index
    log_level: str  # `run --log-level`, else the config's

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> WorkerPlan:
        data = json.loads(text)
        data["peers"] = {int(index): path for index, path in data["peers"].items()}
        return cls(**data)


class WorkerIndex(logging.Filter):
    """Every log line of a worker carries its index (`worker=1` in text, a key in JSON)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True
