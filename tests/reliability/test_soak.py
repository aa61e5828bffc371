"""Soak: 100,000 messages to three instances (one per framework) while callbacks
register and unregister all the while.

Every instance has a stable callback ``s`` that never unregisters, on its own
topic ``inst=<framework>`` and on the shared ``soak=all``. One message in ten goes to
``soak=all`` (all three instances); the rest go to one instance, on its ``inst``
topic plus a churn topic ``churn=<framework>-<slot>``, where churning callbacks
``c<slot>`` come and go; each register/unregister's start and end are recorded,
so for every message it is decidable whether a churning callback had to get it
(registered before the notify began, unregistered only after it returned), had to
miss it (unregistered before it began, or registered after it returned), or may
get it at most once. Counting is by message id, from the instances' side-channel
files (nothing is kept in their memory, so RSS measures skyhooks).
"""

from __future__ import annotations

import collections
import math
import os
import random
import threading
import time

import pytest

from skyhooks import Publisher, RetryPolicy
from tests.support.recording import fd_count, rss_kib

from .conftest import FRAMEWORKS
from .streams import Stream

MESSAGES = int(os.environ.get("SKYHOOKS_SOAK_MESSAGES", "100000"))
SLOTS = 4
RSS_GROWTH_BOUND_KIB = 64 * 1024  # generous: the duplicate-id memory alone holds ~40k ids
FD_GROWTH_BOUND = 8


def keys_for(seq: int) -> dict[str, str]:
    if seq % 10 == 0:
        return {"soak": "all"}
    framework = FRAMEWORKS[seq % 3]
    return {"inst": framework, "churn": f"{framework}-{(seq // 3) % SLOTS}"}


class Churn(threading.Thread):
    """Registers and unregisters churning callbacks until told to stop, recording windows."""

    def __init__(self, instances):
        super().__init__(daemon=True)
        self.instances = instances
        self.stopping = threading.Event()
        # (framework, slot) -> [[reg_start, reg_done, unreg_start, unreg_done], ...]
        self.windows: dict[tuple[str, int], list[list[float]]] = collections.defaultdict(list)
        self.operations = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(8)
        try:
            while not self.stopping.is_set():
                instance = rng.choice(self.instances)
                slot = rng.randrange(SLOTS)
                windows = self.windows[(instance.framework, slot)]
                keys = {"churn": f"{instance.framework}-{slot}"}
                started = time.monotonic()
                if windows and math.isinf(windows[-1][2]):
                    instance.unregister(keys, f"c{slot}")
                    windows[-1][2:] = [started, time.monotonic()]
                else:
                    instance.register(keys, f"c{slot}")
                    windows.append([started, time.monotonic(), math.inf, math.inf])
                self.operations += 1
                self.stopping.wait(0.02)
        except BaseException as exc:  # re-raised by the test
            self.error = exc


def expected(windows: list[list[float]], started: float, finished: float) -> str:
    for reg_start, reg_done, unreg_start, unreg_done in windows:
        if reg_done <= started and finished <= unreg_start:
            return "must"
        if not (finished < reg_start or started > unreg_done):
            return "may"
    return "never"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_100k_messages_with_churn(launch, sqlite_url, secret, measure):
    instances = [launch(fw, sqlite_url, keep_in_memory=False) for fw in FRAMEWORKS]
    by_framework = {i.framework: i for i in instances}
    for instance in instances:
        instance.register({"inst": instance.framework}, "s")
        instance.register({"soak": "all"}, "s")
    policy = RetryPolicy(attempts=3, backoff=0.05, deadline=10.0, timeout=5.0)
    churn = Churn(instances)
    with Publisher(sqlite_url, secret, retry=policy) as publisher:
        stream = Stream(publisher.notify, keys_for, count=MESSAGES, threads=8)
        started = time.monotonic()
        stream.start()
        churn.start()
        stream.wait_done(MESSAGES // 10, timeout=120)
        warm = {i.framework: (rss_kib(i.pid), fd_count(i.pid)) for i in instances}
        for instance in instances:
            instance.control("reset")  # loop-lag samples from here on
        stream.join(timeout=400)
        duration = time.monotonic() - started
        churn.stopping.set()
        churn.join(30)
        end = {i.framework: (rss_kib(i.pid), fd_count(i.pid)) for i in instances}
        lags = {i.framework: i.lag()["max_lag_ms"] for i in instances}
    assert churn.error is None, churn.error
    sent = stream.reports()
    assert len(sent) == MESSAGES

    failed = [s for s in sent if s.report.failed]
    # Stable callbacks: every message addressed to an instance arrived there exactly once.
    lost = duplicated = addressed = 0
    lines = {i.framework: i.lines() for i in instances}
    stable = {fw: collections.Counter(mid for cb, mid, _ in rows if cb == "s") for fw, rows in lines.items()}
    churned = {
        fw: collections.Counter((cb, mid) for cb, mid, _ in rows if cb != "s") for fw, rows in lines.items()
    }
    must = never_violations = may = 0
    churn_lost = churn_dup = 0
    for s in sent:
        keys = keys_for(s.seq)
        targets = FRAMEWORKS if "soak" in keys else (keys["inst"],)
        for fw in targets:
            addressed += 1
            got = stable[fw][s.report.message_id]
            lost += got == 0
            duplicated += got > 1
        if "churn" in keys:
            fw, slot = keys["inst"], int(keys["churn"].rsplit("-", 1)[1])
            got = churned[fw][(f"c{slot}", s.report.message_id)]
            verdict = expected(churn.windows[(fw, slot)], s.started, s.finished)
            if verdict == "must":
                must += 1
                churn_lost += got == 0
                churn_dup += got > 1
            elif verdict == "never":
                never_violations += got > 0
            else:
                may += 1
                churn_dup += got > 1
    growth = {fw: end[fw][0] - warm[fw][0] for fw in by_framework}
    fds = {fw: end[fw][1] - warm[fw][1] for fw in by_framework}
    measure(
        messages=MESSAGES,
        deliveries_addressed=addressed,
        lost=lost,
        duplicated=duplicated,
        failed_reports=len(failed),
        duration_s=round(duration, 1),
        messages_per_s=round(MESSAGES / duration),
        churn_operations=churn.operations,
        churn_must_arrive=must,
        churn_lost=churn_lost,
        churn_duplicated=churn_dup,
        churn_may_arrive=may,
        churn_arrived_outside_window=never_violations,
        rss_warm_kib={fw: warm[fw][0] for fw in warm},
        rss_end_kib={fw: end[fw][0] for fw in end},
        rss_growth_kib=growth,
        fds_warm={fw: warm[fw][1] for fw in warm},
        fds_end={fw: end[fw][1] for fw in end},
        max_loop_lag_ms=lags,
    )
    assert not failed, f"{len(failed)} reports with failures, first: {failed[0].report.failed}"
    assert (lost, duplicated) == (0, 0)
    assert must > 0 and churn.operations > 100, "the churn did not overlap the stream"
    assert (churn_lost, churn_dup, never_violations) == (0, 0, 0)
    assert all(g < RSS_GROWTH_BOUND_KIB for g in growth.values()), growth
    assert all(f <= FD_GROWTH_BOUND for f in fds.values()), fds
    assert duration < 300, f"100k messages took {duration:.0f}s"
