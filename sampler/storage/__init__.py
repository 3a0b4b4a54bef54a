"""Append-only segment files of CRC-framed records, written in rounds (a group commit): what the
persistent exporter queue (forward/disk_queue/), the durable window (window/log.py) and the
decision journal (decide/journal.py) share."""
