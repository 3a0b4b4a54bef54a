"""A ConfigMap update as the kubelet makes it reaches the running daemon.

The kubelet never rewrites a mounted ConfigMap's file: it writes the new content into a
fresh timestamped directory, points a `..data_tmp` symlink at it, renames that over
`..data`, and removes the old directory. The file the daemon was given,
`sampler.yaml -> ..data/sampler.yaml`, keeps its path and inode throughout."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import yaml

from sampler.config import load_config
from tests.support import DaemonThread, config_dict, fast_retry, grpc_export, make_request, make_trace, wait_until

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
KEEP_ALL = {"name": "everything", "type": "always_sample"}


class ConfigMapVolume:
    """A directory laid out and updated the way the kubelet's atomic writer does it."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.key = key
        self._versions = itertools.count()
        self.root.mkdir()
        (self.root / key).symlink_to(Path("..data") / key)

    @property
    def path(self) -> Path:
        return self.root / self.key

    def publish(self, text: str) -> None:
        previous = (self.root / "..data").resolve() if (self.root / "..data").is_symlink() else None
        version = self.root / f"..2026_11_25_12_00_00.{next(self._versions)}"
        version.mkdir()
        (version / self.key).write_text(text)
        temporary = self.root / "..data_tmp"
        temporary.symlink_to(version.name)
        os.replace(temporary, self.root / "..data")
        if previous is not None:
            shutil.rmtree(previous)


def test_a_configmap_symlink_swap_reloads_the_policies(tmp_path, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS], decision_wait="200ms")
    data["reload"] = {"check_interval": "100ms"}
    volume = ConfigMapVolume(tmp_path / "tail-sampler", "sampler.yaml")
    volume.publish(yaml.safe_dump(data))
    daemon = DaemonThread(load_config(volume.path), config_path=str(volume.path))
    try:
        data["tail_sampling"]["policies"] = [ERRORS, KEEP_ALL]
        volume.publish(yaml.safe_dump(data))
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="success") == 1)
        assert [policy.name for policy in daemon.daemon.sampler.policies] == ["errors", "everything"]

        # A plain trace, which only the new policy keeps, reaches the sink.
        trace_id, spans = make_trace(spans=3)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        grpc_sink.wait_for_spans(3)
        assert grpc_sink.trace_ids() == {trace_id}

        # A bad update is rejected as a whole; the policies in force stay.
        volume.publish(yaml.safe_dump(data).replace("always_sample", "alwyas_sample"))
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="failure") == 1)
        assert daemon.scrape().value("tail_sampler_config_last_reload_successful") == 0
        assert [policy.name for policy in daemon.daemon.sampler.policies] == ["errors", "everything"]
    finally:
        daemon.stop()
