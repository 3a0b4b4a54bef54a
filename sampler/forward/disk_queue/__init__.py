"""The persistent exporter queue (sending_queue.storage): batches in segment files on disk."""
