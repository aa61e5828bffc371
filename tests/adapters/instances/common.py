"""The framework-free half of every instance program (see ``__init__``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from skyhooks import Message, RetryPolicy
from skyhooks.core.errors import SkyhooksError


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--store", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--ttl", type=float, default=90.0)
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args()


def announce(port: int) -> None:
    print(f"LISTENING {port}", flush=True)


class Recorder:
    """Named recording callbacks, received messages, loop-lag samples."""

    TICK = 0.010

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._callbacks: dict[tuple[str, str], Callable[[Message], Any]] = {}
        self._max_lag = 0.0
        self._samples = 0
        self._last_tick: float | None = None

    def record(self, name: str, message: Message) -> None:
        self.received.setdefault(name, []).append(
            {"id": message.id, "keys": dict(message.keys), "data": message.data}
        )

    def callback(self, name: str, kind: str, make_async: Callable[[Callable[[Message], None]], Any]) -> Any:
        """The callback for *name*, the same object every time (so unregister finds it).

        ``make_async(record)`` turns a recording function into the framework's
        async callback (a coroutine function that yields to the loop once, then
        records); it is only called for kind ``async``.
        """
        key = (name, kind)
        if key not in self._callbacks:
            if kind == "sync":

                def callback(message: Message) -> None:
                    self.record(name, message)

            elif kind == "raise":

                def callback(message: Message) -> None:
                    self.record(name, message)
                    raise RuntimeError(f"callback {name} raises on purpose")

            elif kind == "async":
                callback = make_async(lambda message: self.record(name, message))
            else:
                raise ValueError(f"unknown callback kind {kind!r}")
            self._callbacks[key] = callback
        return self._callbacks[key]

    def tick(self) -> None:
        """Call every ``TICK`` seconds from the loop; lateness beyond it is lag."""
        now = time.monotonic()
        if self._last_tick is not None:
            self._max_lag = max(self._max_lag, now - self._last_tick - self.TICK)
            self._samples += 1
        self._last_tick = now

    def lag(self) -> dict[str, float]:
        return {"max_lag_ms": round(self._max_lag * 1000, 3), "samples": self._samples}

    def reset(self) -> None:
        self.received.clear()
        self._max_lag = 0.0
        self._samples = 0


def retry_policy(spec: dict[str, Any] | None) -> RetryPolicy | None:
    return RetryPolicy(**spec) if spec else None


class Publishers:
    """One publisher of the adapter under test per distinct ``retry`` spec of
    ``/control/notify``, made on first use: ``publishers.get(spec)``."""

    def __init__(self, publisher_class: Any, store: Any, secret: str) -> None:
        self._make = lambda spec: publisher_class(store, secret, retry=retry_policy(spec))
        self._made: dict[str, Any] = {}

    def get(self, spec: dict[str, Any] | None) -> Any:
        key = json.dumps(spec, sort_keys=True)
        if key not in self._made:
            self._made[key] = self._make(spec)
        return self._made[key]

    def values(self) -> list[Any]:
        """Every publisher made so far (to close them at exit)."""
        return list(self._made.values())


def report_json(report: Any) -> bytes:
    return json.dumps(report.as_dict()).encode()


def error_json(exc: BaseException) -> bytes:
    name = type(exc).__name__ if isinstance(exc, SkyhooksError) else f"unexpected {type(exc).__name__}"
    return json.dumps({"error": f"{name}: {exc}"}).encode()


def ok_json(**fields: Any) -> bytes:
    return json.dumps({"ok": True, **fields}).encode()


def topics_json(topics: Any) -> bytes:
    return json.dumps({"topics": sorted(map(str, topics))}).encode()


def asyncio_callback(record: Callable[[Message], None]) -> Callable[[Message], Any]:
    """A coroutine-function callback that yields to the loop once, then records:
    the asyncio-based instances' (Tornado, ASGI, aiohttp) ``make_async``."""

    async def callback(message: Message) -> None:
        await asyncio.sleep(0)
        record(message)

    return callback
