"""Instances that leave a trace outside themselves, and process measurements.

:class:`RecordingInstance` is an :class:`~tests.support.instances.Instance` run
through ``tests/reliability/recording_instance.py``: every message a callback
records is also appended to a side-channel file, readable after the process
died (``kill -9``) or exited (SIGTERM). :func:`rss_kib` and :func:`fd_count`
read ``/proc``.
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

from tests.support.instances import Instance


class RecordingInstance(Instance):
    def __init__(
        self,
        framework: str,
        store: str,
        secret: str,
        ttl: float = 90.0,
        log_dir: Path | None = None,
        keep_in_memory: bool = True,
    ):
        super().__init__(framework, store, secret, ttl, log_dir)
        self.channel = self.log_path.with_suffix(".received")
        self.keep_in_memory = keep_in_memory

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.reliability.recording_instance", self.framework, *self.options()]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, SKYHOOKS_SIDE_CHANNEL=str(self.channel))
        if not self.keep_in_memory:
            env["SKYHOOKS_SIDE_CHANNEL_ONLY"] = "1"
        return env

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def lines(self) -> list[tuple[str, str, float]]:
        """``(callback name, message id, unix time)`` for every message recorded so far."""
        if not self.channel.exists():
            return []
        rows = []
        for line in self.channel.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:  # a line cut short by kill -9 is not a record
                rows.append((parts[0], parts[1], float(parts[2])))
        return rows

    def counts(self, name: str) -> collections.Counter[str]:
        """How many times callback *name* got each message id."""
        return collections.Counter(mid for cb, mid, _ in self.lines() if cb == name)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
