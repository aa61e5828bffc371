"""WebhookWSGI called directly with hand-made PEP 3333 environs (no server, no framework):
what it reads and when, and what it answers. The same app under gevent's pywsgi, over real
sockets, is in ``tests/adapters/test_gevent_specific.py`` and the behaviour suite."""

from __future__ import annotations

import io
import json
from typing import Any

from skyhooks import generate_secret
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer
from skyhooks.wsgi import WebhookWSGI
from tests.core.test_registry import StepRegistry
from tests.test_imports import FRAMEWORKS, run

SECRET = generate_secret()
A42 = {"account_id": 42}
LIMIT = 1000


class Input(io.BytesIO):
    """``wsgi.input`` that records how much was asked for at each read."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


class Broken(Input):
    def read(self, size: int | None = -1) -> bytes:
        raise OSError("bad chunked encoding")


def app_and_calls() -> tuple[WebhookWSGI, list[Any]]:
    registry = StepRegistry("http://127.0.0.1:9/skyhooks", MemoryStore(), SECRET, max_body_size=LIMIT)
    calls: list[Any] = []
    registry.register(A42, calls.append)
    return WebhookWSGI(registry), calls


def environ(body: bytes, headers: dict[str, str], method: str = "POST", stream: Input | None = None) -> dict:
    env: dict[str, Any] = {"REQUEST_METHOD": method, "wsgi.input": stream or Input(body)}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return env


def call(app: WebhookWSGI, env: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    started: list[Any] = []
    body = b"".join(app(env, lambda status, headers: started.append((status, headers))))
    ((status, headers),) = started
    return status, dict(headers), body


def signed(data: Any) -> tuple[bytes, dict[str, str]]:
    message = Signer(SECRET).build(A42, data)
    return message.body, dict(message.headers)


def test_a_signed_post_is_dispatched_and_only_its_declared_length_read() -> None:
    app, calls = app_and_calls()
    body, headers = signed({"progress": 100})
    env = environ(body, {**headers, "Content-Length": str(len(body))})
    status, answer, reply = call(app, env)
    assert status == "200 OK" and json.loads(reply) == {"status": "ok", "notified": 1}
    assert answer["Content-Length"] == str(len(reply)) and "Connection" not in answer
    assert [(m.keys, m.data) for m in calls] == [(A42, {"progress": 100})]
    assert env["wsgi.input"].asked == [len(body)]


def test_a_declared_body_over_the_limit_is_refused_unread_and_the_connection_closed() -> None:
    app, calls = app_and_calls()
    body, headers = signed("x" * 2000)
    env = environ(body, {**headers, "Content-Length": str(len(body))})
    status, answer, reply = call(app, env)
    assert status.startswith("413 ") and answer["Connection"] == "close"
    assert json.loads(reply)["status"] == "error"
    assert env["wsgi.input"].asked == [] and calls == []


def test_a_body_of_no_declared_length_is_read_to_one_byte_past_the_limit() -> None:
    app, calls = app_and_calls()
    body, headers = signed("x" * 2000)  # as a server hands a chunked body: no CONTENT_LENGTH
    env = environ(body, headers)
    status, answer, _ = call(app, env)
    assert status.startswith("413 ") and answer["Connection"] == "close"
    assert env["wsgi.input"].asked == [LIMIT + 1] and calls == []
    small, headers = signed("y")
    status, _, _ = call(app, environ(small, headers))
    assert status == "200 OK" and [m.data for m in calls] == ["y"]


def test_an_unreadable_body_is_a_400_that_closes_the_connection() -> None:
    app, calls = app_and_calls()
    body, headers = signed("x")
    status, answer, reply = call(app, environ(body, headers, stream=Broken(body)))
    assert status.startswith("400 ") and answer["Connection"] == "close"
    assert "unreadable body" in json.loads(reply)["error"] and calls == []


def test_other_methods_are_405_with_allow() -> None:
    app, _ = app_and_calls()
    status, answer, _ = call(app, environ(b"", {}, method="GET"))
    assert status.startswith("405 ") and answer["Allow"] == "POST"


def test_it_imports_with_every_framework_client_and_driver_blocked() -> None:
    result = run("import skyhooks.wsgi; print('ok')", FRAMEWORKS | {"urllib3"})
    assert result.stdout.strip() == "ok", result.stderr
