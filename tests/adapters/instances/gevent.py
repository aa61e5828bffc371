"""The gevent instance program (see ``tests/adapters/instances/__init__.py``)."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - everything else comes after the monkey-patching
import signal  # noqa: E402
import socket  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from skyhooks import Message, SkyhooksError, open_store  # noqa: E402
from skyhooks.gevent import Publisher, Registry, WebhookApp, WSGIServer  # noqa: E402

from .common import (  # noqa: E402
    Publishers,
    Recorder,
    announce,
    error_json,
    ok_json,
    parse_args,
    report_json,
    topics_json,
)


def make_async(record: Callable[[Message], None]) -> Callable[[Message], None]:
    def callback(message: Message) -> None:
        gevent.sleep(0)  # the cooperative yield: gevent's notion of an async callback
        record(message)

    return callback


class Instance:
    """Routes /skyhooks to the WebhookApp and /control/<action> to the recorder and registry."""

    def __init__(self, store: Any, secret: str, registry: Registry) -> None:
        self.store, self.secret, self.registry = store, secret, registry
        self.recorder = Recorder()
        self.publishers = Publishers(Publisher, store, secret)
        self.webhook = WebhookApp(registry)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/skyhooks":
            return self.webhook(environ, start_response)
        status, body = "404 Not Found", json.dumps({"error": f"no such path {path}"}).encode()
        if path.startswith("/control/"):
            status = "200 OK"
            try:
                request = json.loads(environ["wsgi.input"].read() or b"{}")
                body = self._act(environ["REQUEST_METHOD"], path[len("/control/") :], request)
            except (ValueError, TypeError, KeyError) as exc:
                status, body = "400 Bad Request", error_json(exc)
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _act(self, method: str, action: str, request: dict[str, Any]) -> bytes:
        registry, recorder = self.registry, self.recorder
        if method == "GET" and action == "received":
            return json.dumps(recorder.received).encode()
        if method == "GET" and action == "topics":
            return topics_json(registry.topics)
        if method == "GET" and action == "lag":
            return json.dumps(recorder.lag()).encode()
        if action in ("register", "unregister"):
            callback = recorder.callback(request["name"], request.get("kind", "sync"), make_async)
            change = registry.register if action == "register" else registry.unregister
            change(request["keys"], callback, timeout=None if request.get("wait", True) else 0)
            return ok_json()
        if action == "reset":
            recorder.reset()
            return ok_json()
        if action == "notify":
            try:
                publisher = self.publishers.get(request.get("retry"))
                report = publisher.notify(request["keys"], request.get("data"))
            except SkyhooksError as exc:
                return error_json(exc)
            return report_json(report)
        if action == "stop":
            return json.dumps({"removed": registry.stop()}).encode()
        raise KeyError(f"no control action {method} {action!r}")


def tick_forever(recorder: Recorder) -> None:
    while True:
        recorder.tick()
        gevent.sleep(Recorder.TICK)


def main() -> None:
    args = parse_args(__doc__ or "")
    listener = socket.create_server(("127.0.0.1", args.port))
    port = listener.getsockname()[1]
    # One store object for the registry and the publishers, so memory:// is shared too.
    store = open_store(args.store)
    url = f"http://127.0.0.1:{port}/skyhooks"
    registry = Registry(url=url, store=store, secret=args.secret, ttl=args.ttl)
    instance = Instance(store, args.secret, registry)
    server = WSGIServer(listener, instance, log=None)
    server.start()
    gevent.spawn(tick_forever, instance.recorder)

    stopping = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopping.set)
    registry.start()
    announce(port)
    stopping.wait()

    server.stop(timeout=1)
    registry.stop()  # bounded by the registry's stop_timeout
    for publisher in instance.publishers.values():
        publisher.close()


if __name__ == "__main__":
    main()
