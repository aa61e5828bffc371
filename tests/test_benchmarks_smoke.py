"""Tiny runs of the benchmark harness (it counts what it sends, nothing is lost) and of its report.

Never a timing assertion: these machines are shared; the figures themselves come
from ``python -m benchmarks``.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("tornado")

from benchmarks import delivery, report
from benchmarks.common import start_process
from skyhooks import generate_secret


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_blocking_publisher_to_tornado_instances_loses_nothing(tmp_path, mode):
    secret = generate_secret()
    store = f"sqlite:///{tmp_path}/bench.db"
    with delivery.skyhooks_instances("tornado", store, secret, 2) as tallies:
        targets = delivery.targets_for("tornado", tallies, (1, 4))  # only 2 instances: the 1-target
        targets.append(
            {**targets[0], "label": "tornado-both", "keys": {"bench": "tornado-4"}, "tallies": tallies}
        )
        plan = {
            "mode": mode,
            "store": store,
            "secret": secret,
            "seconds": 0.3,
            "threads": 2,
            "in_flight": 2,
            "rate": 200,
            "count": 40,
            "targets": targets,
        }
        results = delivery.run_sender("blocking", plan, timeout=120)
    assert [r["label"] for r in results] == ["tornado-1", "tornado-both"]
    for result, fanout in zip(results, (1, 2), strict=True):
        assert result["sent"] > 0
        assert result["expected"] == result["sent"] * fanout
        assert result["delivered"] == result["expected"] and result["lost"] == 0, result
        if mode == "latency":
            assert result["sent"] == 40
            assert len(result["latencies"]) == 40 * fanout


@pytest.mark.parametrize(
    ("sender", "sends"),
    [
        ("submit", {"threads": 1, "in_flight": 4}),
        ("tornado", {"in_flight": 2, "batch": 10}),
        ("blocking", {"threads": 12}),  # notify from a crowd of threads (benchmarks/threads.py)
    ],
    ids=["blocking submit", "tornado notify_many", "blocking notify crowd"],
)
def test_submitted_and_batched_messages_are_all_counted(tmp_path, sender, sends):
    secret = generate_secret()
    store = f"sqlite:///{tmp_path}/bench.db"
    with delivery.skyhooks_instances("tornado", store, secret, 1) as tallies:
        plan = {
            "mode": "throughput",
            "store": store,
            "secret": secret,
            "seconds": 0.3,
            **sends,
            "targets": delivery.targets_for("tornado", tallies, (1,)),
        }
        (result,) = delivery.run_sender(sender, plan, timeout=120)
    assert result["sent"] > 0 and result["posts"] > 0 and result["sent"] % sends.get("batch", 1) == 0
    assert result["delivered"] == result["expected"] == result["sent"] and result["lost"] == 0, result


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt)")
def test_redis_baseline_loses_nothing():
    pytest.importorskip("redis")
    with delivery.redis_server() as port:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.baselines.redis_subscriber",
            "--redis-port",
            str(port),
            "--channels",
            "one",
        ]
        with start_process(cmd) as sub:
            target = {
                "label": "redis-1",
                "keys": {"bench": "redis"},
                "channel": "one",
                "tallies": [f"http://127.0.0.1:{sub.port}/tally"],
            }
            plan = {
                "mode": "throughput",
                "seconds": 0.3,
                "threads": 1,
                "redis_port": port,
                "targets": [target],
            }
            [result] = delivery.run_sender("redis", plan, timeout=60)
    assert result["sent"] > 0 and result["delivered"] == result["sent"] and result["lost"] == 0, result


@pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli (apt)",
)
def test_a_small_fleet_delivers_each_message_to_its_one_instance():
    """Figure 7 at 1 and 4 instances, 2,000 accounts, two rounds: every message
    reaches the one instance holding its account, once; every Socket.IO node
    reads every message; every process's CPU time is read."""
    pytest.importorskip("socketio")
    from benchmarks import fleet

    systems = ["redis-cluster", "socketio"]
    shape = fleet.Shape(accounts=2000, rounds=2, seconds=0.3, paced_count=40)
    result = fleet.run(True, log=lambda line: None, systems=systems, sizes=[1, 4], shape=shape)
    assert result["skipped"] == {}
    rows = {(r["system"], r["instances"]): r for r in result["rows"]}
    assert rows.keys() == {(system, n) for system in systems for n in (1, 4)}
    for (system, n), r in rows.items():
        assert r["sent"] > 0 and r["delivered"] == r["sent"] and r["lost"] == 0, r
        assert r["latency_ms"]["samples"] == 40, r  # each paced message timed once, where it landed
        assert [run["round"] for run in r["rounds"]] == [0, 1]
        for run in r["rounds"]:
            assert run["cpu"]["publisher"] > 0 and run["cpu"]["receivers"] > 0, run
            assert run.get("seen") == (run["sent"] * n if system == "socketio" else None), run
        assert r["cost_ratio"] == 1.0 if n == 1 else r["cost_ratio"] > 0
    assert rows["redis-cluster", 4]["cpu_us"]["store"] > 0  # the three nodes' CPU time is read too
    text = "\n".join(report._fleet(result)[0])
    assert "| skyhooks on Redis Cluster | 4 |" in text and "| Socket.IO RedisManager | 4 |" in text


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt)")
def test_the_redis_store_figure_fills_through_the_store_and_reads_its_memory(tmp_path):
    pytest.importorskip("redis")
    from benchmarks import stores
    from skyhooks import open_store
    from tests.support.redis import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        store = open_store(server.url(0))
        counts = {"lookups": 50, "adds": 10, "renews": 2, "renew_topics": 5}
        memory = stores.redis_memory([server.port], store, counts)
        # measure() asserts each lookup of a filled topic finds its one URL
        result = stores.run_store("redis", store, [200, 500], 60, lambda line: None, memory=memory, **counts)
        store.close()
    finally:
        server.stop()
    first, last = (r["memory"] for r in result["rows"])
    assert [r["size"] for r in result["rows"]] == [200, 500]
    # 500 filled, and what measuring the first size added: 10 adds and a renewed URL's 5 topics
    assert first["subscriptions"] == 200 and last["subscriptions"] == 500 + 15
    assert 0 < first["used_memory"] < last["used_memory"]
    assert last["topic_key_bytes"] > 0 and last["url_index_bytes_per_topic"] > 0


def test_memory_per_subscription_is_measured_in_every_registry():
    """Each framework's registry, the asyncio-based ones on a loop of their own."""
    from benchmarks import memory

    frameworks = [
        fw
        for fw in ("tornado", "gevent", "twisted", "asgi")
        if importlib.util.find_spec(fw if fw != "asgi" else "uvicorn")
    ]
    rows = memory.run(True, frameworks, log=lambda line: None)["rows"]
    assert [row["framework"] for row in rows] == frameworks
    assert all(100 < row["bytes_per_subscription"] < 10_000 for row in rows), rows


def test_instructions_are_counted_per_request_at_the_server():
    """Figure 3b on one framework: each server under callgrind counted the
    requests its handler took, and their instructions (a count, not a time)."""
    from benchmarks import instructions

    result = instructions.run(True, ["gevent"], log=lambda line: None)
    counts = result["frameworks"]["gevent"]
    for kind in ("skyhooks", "bare"):
        assert counts[kind]["requests"] >= 100, counts  # wrk's answers were counted by the handler
        assert 50_000 < counts[kind]["per_request"] < 5_000_000, counts  # a request's worth, not a run's
    # Verifying, deduplicating and dispatching is work on top of the bare handler's parsing.
    assert counts["skyhooks"]["per_request"] > counts["bare"]["per_request"]
    assert counts["ratio"] == counts["bare"]["per_request"] / counts["skyhooks"]["per_request"]


def test_the_report_of_a_quick_run_says_what_it_did_not_measure():
    # The committed results of a full run, cut to a quick run's shape: one round
    # of the targets, store scaling stopped at 100k.
    results = report.load()
    assert {"targets", "stores"} <= results.keys(), "benchmarks/results/*.json are committed"
    full = report.markdown(results)
    assert "| SQLite lookup p99 at 1M within 2x of 1k | yes |" in full
    assert "A quick run has one round" not in full
    quick = copy.deepcopy(results)
    quick["stores"]["sqlite"]["rows"] = [r for r in quick["stores"]["sqlite"]["rows"] if r["size"] <= 100_000]
    quick["targets"]["rounds"] = 1
    quick["targets"]["seconds"] = 0.5
    quick["targets"]["paced_count"] = 500
    text = report.markdown(quick)
    assert "| SQLite lookup p99 at 1M within 2x of 1k | not measured | this run stopped at 100,000" in text
    assert "## 0. The targets, interleaved (one round)" in text
    assert "0.5 s per throughput run, 500 messages paced" in text
    assert "their 5th slowest" in text


def test_a_run_stops_before_it_starts_when_a_program_it_needs_is_missing(tmp_path):
    # No PATH: neither wrk nor redis-server can be found. The run says what to
    # install and exits before measuring (or writing) anything.
    results = report.RESULTS / "receive.json"
    before = results.read_bytes() if results.exists() else None
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "receive", "--quick"],
        cwd=report.HERE.parent,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "wrk is not installed: apt-get install wrk" in out.stderr
    assert "redis-server" not in out.stderr  # the receive figure needs no Redis
    assert (results.read_bytes() if results.exists() else None) == before


def test_the_plots_are_drawn_from_the_results(tmp_path):
    pytest.importorskip("matplotlib")
    report.plots(report.load(), tmp_path)
    for name in ("throughput", "latency", "stores"):
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000, name
