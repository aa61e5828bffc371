"""The gevent benchmark receiver (see ``_tally``)."""

from gevent import monkey

monkey.patch_all()

# Patched above before anything else is imported.
import socket  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.servers._tally import Tally, announce, parse_args  # noqa: E402

BARE_REPLY = b'{"status":"ok","notified":1}'


def main() -> None:
    args = parse_args()
    tally = Tally()
    from skyhooks.gevent import Registry, WebhookApp, WSGIServer

    def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        tally.parsed(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "28")])
        return [BARE_REPLY]

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hook: Callable[..., Any] = bare
    if args.mode == "skyhooks":
        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", args.store, args.secret, ttl=3600)
        registry.start()
        for keys in args.keys:
            registry.register(keys, tally.callback)  # blocks this greenlet until stored
        hook = WebhookApp(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ["PATH_INFO"]
        if path.startswith("/tally/"):
            body = tally.answer(path[7:]) or b""
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        return hook(environ, start_response)

    server = WSGIServer(listener, app, log=None)
    server.start()
    announce(port)
    server.serve_forever()


if __name__ == "__main__":
    main()
