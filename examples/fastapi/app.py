"""A FastAPI app that shows a Celery task's live progress in the browser, through skyhooks.

    SKYHOOKS_STORE=sqlite:////tmp/hooks.db SKYHOOKS_SECRET=whsec_... \\
    SKYHOOKS_URL=http://127.0.0.1:8000/skyhooks CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    uvicorn app:app --port 8000 --timeout-graceful-shutdown 5        # from this folder

A task is started in two steps, so that nothing it publishes is missed: the page opens
the task's event stream (``GET /tasks/{id}/events``), which registers a callback for the
key ``task_id=<id>`` and sends ``ready`` once the store has it; only then does it start
the task (``POST /tasks/{id}/start``), which queues the Celery task under that id. The
worker publishes each step for the key with the blocking ``skyhooks.Publisher``; the
store names this app's ``SKYHOOKS_URL``, its ``WebhookASGI`` receives the POST, and the
callback puts the message on the stream. The stream ends with the task's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import tasks
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, StreamingResponse

from skyhooks import Message
from skyhooks.asyncio import Registry, WebhookASGI

#: An idle stream gets a comment line this often, so proxies do not time it out.
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

registry = Registry(
    url=os.environ.get(
        "SKYHOOKS_URL", "http://127.0.0.1:8000/skyhooks"
    ),  # where publishers reach this process
    store=os.environ["SKYHOOKS_STORE"],
    secret=os.environ["SKYHOOKS_SECRET"],
)
#: Task ids this process has started, so a second start of one is refused (a real
#: app would keep its tasks in its database).
started: set[str] = set()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    registry.start()  # renews this URL's subscriptions while the app runs
    yield
    await registry.stop()  # removes this URL from the store


app = FastAPI(title="skyhooks + Celery + FastAPI", lifespan=lifespan)
# Routed at exactly SKYHOOKS_URL's path. (app.mount("/skyhooks", ...) would answer a POST
# to /skyhooks with a redirect to /skyhooks/, which publishers do not follow.)
app.add_route("/skyhooks", WebhookASGI(registry))

TaskId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="from POST /tasks")]


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE


@app.post("/tasks", status_code=201)
async def new_task() -> dict[str, str]:
    """A new task id. Nothing runs until ``POST /tasks/{id}/start``."""
    return {"task_id": uuid.uuid4().hex}


@app.get("/tasks/{task_id}/events")
async def events(task_id: TaskId) -> StreamingResponse:
    """The task's progress as Server-Sent Events: ``ready`` once this stream is listed in
    the store, then one ``data:`` event per message, ending with the result."""
    return StreamingResponse(
        stream({"task_id": task_id}), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def stream(keys: dict[str, str]) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    callback = queue.put_nowait  # bound once, so unregister gets the same callable
    try:
        await registry.register(keys, callback)  # local at once; finishes when the store has it
        yield b"event: ready\ndata: {}\n\n"
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(message.data)}\n\n".encode()
            if isinstance(message.data, dict) and message.data.get("kind") == "result":
                return
    finally:  # the result came, the browser left (Starlette cancels this), or the server stops
        registry.unregister(keys, callback)


@app.post("/tasks/{task_id}/start", status_code=202)
async def start(task_id: TaskId, steps: Annotated[int, Query(ge=1, le=100)] = 5) -> dict[str, str]:
    """Queue the Celery task under *task_id*: open its events first, or its first steps are missed."""
    if task_id in started:
        raise HTTPException(409, f"task {task_id} was started already")
    started.add(task_id)
    # apply_async talks to the broker (blocking I/O): off the event loop.
    await asyncio.to_thread(tasks.crunch.apply_async, kwargs={"steps": steps}, task_id=task_id)
    return {"task_id": task_id}


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>skyhooks + Celery + FastAPI</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 40em; color: #222; }
  progress { width: 12em; } li.done { font-weight: bold; }
</style></head>
<body>
<h1>Celery task progress, live</h1>
<p>Each run queues a Celery task; its worker publishes every step through skyhooks, and
this server's webhook endpoint puts it on the task's event stream.</p>
<label>Steps <input id="steps" type="number" value="5" min="1" max="100"></label>
<button id="run">Run task</button>
<ul id="tasks"></ul>
<script>
"use strict";
document.getElementById("run").onclick = async function () {
  const steps = document.getElementById("steps").value;
  const {task_id} = await (await fetch("/tasks", {method: "POST"})).json();
  const item = document.createElement("li"), bar = document.createElement("progress");
  const text = document.createElement("span");
  item.id = "task-" + task_id;
  item.append(bar, " ", text);
  text.textContent = "task " + task_id.slice(0, 8) + ": waiting";
  document.getElementById("tasks").prepend(item);
  const events = new EventSource("/tasks/" + task_id + "/events");
  // Start the task only once this stream is listed in the store: no step is missed.
  events.addEventListener("ready", function () {
    fetch("/tasks/" + task_id + "/start?steps=" + steps, {method: "POST"});
  }, {once: true});
  events.onmessage = function (event) {
    const data = JSON.parse(event.data);
    if (data.kind === "progress") {
      bar.max = data.of; bar.value = data.step;
      text.textContent = "task " + task_id.slice(0, 8) + ": step " + data.step + " of " + data.of;
    } else if (data.kind === "result") {
      bar.value = bar.max;
      text.textContent = "task " + task_id.slice(0, 8) + ": " + data.text;
      item.className = "done";
      events.close();
    }
  };
};
</script>
</body>
</html>
"""
