"""A Celery task that reports its progress and result to live browsers via skyhooks.

The worker needs only the store and the secret the web servers use:

    SKYHOOKS_STORE=sqlite:////var/lib/app/hooks.db   # or mongodb://host/db
    SKYHOOKS_SECRET=whsec_...
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0       # also the result backend

    celery -A tasks worker --pool=solo --loglevel=INFO    # from this folder

and anything can start the task: ``tasks.crunch.delay(42)``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

from skyhooks import Publisher, StoreError

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

app = Celery("skyhooks_example", broker=BROKER, backend=os.environ.get("CELERY_RESULT_BACKEND", BROKER))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    # One task at a time per worker process: a task runs for seconds, not milliseconds.
    worker_prefetch_multiplier=1,
    task_acks_late=True,
)

_publisher: Publisher | None = None
_lock = threading.Lock()


def publisher() -> Publisher:
    """The worker process's one Publisher, made on first use.

    Made lazily, so that under the prefork pool each child opens its own store
    connection and HTTP pool after the fork rather than sharing the parent's.
    """
    global _publisher
    with _lock:
        if _publisher is None:
            _publisher = Publisher(store=os.environ["SKYHOOKS_STORE"], secret=os.environ["SKYHOOKS_SECRET"])
        return _publisher


@worker_process_shutdown.connect
def _close_publisher(**_: Any) -> None:
    global _publisher
    with _lock:
        if _publisher is not None:
            _publisher.close()
            _publisher = None


# StoreError means the store could not be read and nothing was sent for that
# message, so retrying the task is safe; steps already sent are sent again, so
# pages should key progress by (task, step).
@app.task(
    name="skyhooks_example.crunch",
    bind=True,
    autoretry_for=(StoreError,),
    retry_backoff=True,
    max_retries=5,
)
def crunch(self: Any, account_id: int | str, steps: int = 5, interval: float = 0.5) -> dict[str, Any]:
    """Work in *steps*, publishing each step and then the result for *account_id*.

    Every message carries ``sent`` (``time.time()`` when published), so a
    receiver can measure delivery latency. Returns what each publish reported.
    """
    keys = {"account_id": account_id}
    task = self.request.id
    reports = []
    started = time.monotonic()
    for step in range(1, steps + 1):
        time.sleep(interval)  # the "work"
        report = publisher().notify(
            keys, {"task": task, "kind": "progress", "step": step, "of": steps, "sent": time.time()}
        )
        reports.append(report.as_dict())
    elapsed = time.monotonic() - started
    text = f"done: {steps} steps in {elapsed:.1f} s"
    report = publisher().notify(keys, {"task": task, "kind": "result", "text": text, "sent": time.time()})
    reports.append(report.as_dict())
    return {"task": task, "account_id": str(account_id), "reports": reports}
