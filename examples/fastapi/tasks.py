"""The FastAPI example's Celery task: it works in steps and publishes each one, through
skyhooks, for the key ``task_id=<its own Celery task id>``.

The worker needs only the store and the secret the web app uses:

    SKYHOOKS_STORE=sqlite:////tmp/hooks.db          # or mongodb://..., redis://...
    SKYHOOKS_SECRET=whsec_...
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0      # also the result backend

    celery -A tasks worker --pool=solo --loglevel=INFO    # from this folder
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

app = Celery(
    "skyhooks_fastapi_example", broker=BROKER, backend=os.environ.get("CELERY_RESULT_BACKEND", BROKER)
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,  # a task runs for seconds: one at a time per worker process
    task_acks_late=True,
)

_publisher: Publisher | None = None
_lock = threading.Lock()


def publisher() -> Publisher:
    """The worker process's one Publisher, made on first use: under the prefork pool,
    after the fork, so each child has its own store connection and HTTP pool."""
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


# StoreError: the store could not be read and nothing was sent for that message, so a
# retry is safe; it starts the task again, and the page keys its rows by step.
@app.task(
    name="skyhooks_fastapi_example.crunch",
    bind=True,
    autoretry_for=(StoreError,),
    retry_backoff=True,
    max_retries=5,
)
def crunch(self: Any, steps: int = 5, interval: float = 0.5) -> dict[str, Any]:
    """Work in *steps*, publishing ``{"kind": "progress", "step": n, "of": steps}`` after
    each and ``{"kind": "result", ...}`` at the end; return each publish's delivery report."""
    keys = {"task_id": self.request.id}
    reports = []
    started = time.monotonic()
    for step in range(1, steps + 1):
        time.sleep(interval)  # the "work"
        report = publisher().notify(keys, {"kind": "progress", "step": step, "of": steps})
        reports.append(report.as_dict())
    text = f"done: {steps} steps in {time.monotonic() - started:.1f} s"
    reports.append(publisher().notify(keys, {"kind": "result", "text": text}).as_dict())
    return {"task_id": self.request.id, "reports": reports}
