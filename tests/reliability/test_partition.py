"""A network partition between a publisher and an instance, in network namespaces.

The test makes two namespaces of its own (publisher side, instance side) joined by
a veth pair with addresses in 10.213.77.0/24, which exist only inside those
namespaces; it runs the publisher (``ns_publisher.py``) and a Tornado instance
(``ns_instance.py``) in them, cuts the link (``ip link set down``), restores it,
and removes everything at the end. Skipped where the kernel refuses (no root or
CAP_NET_ADMIN, no ``ip``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyhooks.core.keys import topics_of
from skyhooks.core.stores import open_store
from tests.support.instances import REPO

SUBNET = "10.213.77"
KEYS = {"account_id": 42}
CUT_POLICY = {"attempts": 2, "backoff": 0.05, "timeout": 1.0, "deadline": 3.0}


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2)")
    tag = f"{os.getpid() % 100000}"
    pub, inst = f"skyr-pub-{tag}", f"skyr-inst-{tag}"
    made = []
    try:
        for name in (pub, inst):
            result = ip("netns", "add", name, check=False)
            if result.returncode != 0:
                pytest.skip(
                    f"cannot make network namespaces here (needs root or CAP_NET_ADMIN): "
                    f"{result.stderr.strip()}"
                )
            made.append(name)
        # Both ends are created inside the namespaces: nothing is added to the host's network.
        ip("-n", pub, "link", "add", "skp", "type", "veth", "peer", "name", "ski", "netns", inst)
        for name, dev, host in ((pub, "skp", 1), (inst, "ski", 2)):
            ip("-n", name, "addr", "add", f"{SUBNET}.{host}/24", "dev", dev)
            ip("-n", name, "link", "set", dev, "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield pub, inst
    finally:
        for name in made:
            ip("netns", "del", name, check=False)


class InNamespace:
    def __init__(self, namespace: str, module: str, *args: str, log: Path):
        self._log = open(log, "w")  # noqa: SIM115 - lives as long as the process
        self.log_path = log
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", module, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def line(self, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # bounded: every request has a deadline
        assert line, f"process ended:\n{self.log_path.read_text()}"
        return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()
        self._log.close()


def test_partition_cut_and_restore(namespaces, tmp_path, sqlite_url, secret, measure):
    pub, inst = namespaces
    record = tmp_path / "received"
    instance = InNamespace(
        inst,
        "tests.reliability.ns_instance",
        "--host",
        f"{SUBNET}.2",
        "--store",
        sqlite_url,
        "--secret",
        secret,
        "--keys",
        "account_id=42",
        "--record",
        str(record),
        log=tmp_path / "instance.log",
    )
    publisher = InNamespace(
        pub,
        "tests.reliability.ns_publisher",
        "--store",
        sqlite_url,
        "--secret",
        secret,
        log=tmp_path / "publisher.log",
    )
    try:
        port = int(instance.line().split()[1])
        url = f"http://{SUBNET}.2:{port}/skyhooks"
        store = open_store(sqlite_url)

        def notify(retry=None):
            assert publisher.process.stdin is not None
            publisher.process.stdin.write(json.dumps({"keys": KEYS, "data": 1, "retry": retry}) + "\n")
            publisher.process.stdin.flush()
            answer = json.loads(publisher.line())
            assert "report" in answer, answer
            return answer["report"], answer["elapsed"]

        def received() -> list[str]:
            return record.read_text().split() if record.exists() else []

        before = [notify() for _ in range(5)]
        assert all(r["delivered"] == [url] for r, _ in before), before

        ip("-n", inst, "link", "set", "ski", "down")
        cut = [notify(CUT_POLICY) for _ in range(3)]
        for report, elapsed in cut:
            assert report["delivered"] == [] and url in report["failed"], report
            reason = report["failed"][url]
            assert "refused" not in reason and report["pruned"] == [], report
            assert elapsed < CUT_POLICY["deadline"] + 2.0, f"{elapsed:.1f}s: past the deadline"
        assert topics_of(KEYS) <= set(store.lookup(topics_of(KEYS)).get(url, ())), "pruned on a timeout"
        ids_cut = {r["message_id"] for r, _ in cut}

        ip("-n", inst, "link", "set", "ski", "up")
        restored_at, after = time.monotonic(), []
        while len(after) < 5 and time.monotonic() - restored_at < 20:
            report, _ = notify({"attempts": 3, "backoff": 0.2, "timeout": 2.0, "deadline": 5.0})
            if report["delivered"] == [url]:
                after.append(report)
        assert len(after) == 5, "deliveries did not resume after the link came back"
        resume_s = time.monotonic() - restored_at
        got = received()
        assert {r["message_id"] for r, _ in before} | {r["message_id"] for r in after} <= set(got)
        # A partition is not a refusal: the cut messages may arrive late (TCP retransmits), never twice.
        assert len(got) == len(set(got))

        # Only a refusal prunes: kill the instance, the next notify prunes its URL.
        instance.process.kill()
        instance.process.wait()
        report, _ = notify(CUT_POLICY)
        assert report["pruned"] == [url] and "refused" in report["failed"][url], report
        measure(
            before_delivered=len(before),
            cut_reasons=sorted({r["failed"][url][:60] for r, _ in cut}),
            cut_elapsed_s=[round(e, 2) for _, e in cut],
            cut_messages_arrived_late=len(ids_cut & set(got)),
            resumed_after_s=round(resume_s, 2),
            after_delivered=len(after),
            pruned_on_timeout=0,
            pruned_on_refused=1,
        )
    finally:
        instance.stop()
        publisher.stop()
