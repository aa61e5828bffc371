"""The store and publishing subcommands: ``listeners``, ``notify``, ``purge``.

Each takes the parsed arguments, prints to stdout and returns the exit status;
errors are raised (``SkyhooksError``/``ValueError``/``OSError``) for ``main`` to
turn into one line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.keys import Topic, topics_of, validate_keys
from ..core.stores import open_store
from ..core.values import DeliveryReport, Subscription

__all__ = ["format_report", "format_table", "listeners", "notify", "parse_key", "parse_ports", "purge"]


def parse_key(text: str) -> tuple[str, str]:
    """``"account_id=42"`` -> ``("account_id", "42")``; the value stays a string
    (values compare as strings, so ``42`` and ``"42"`` are the same subscribers)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"key {text!r} is not NAME=VALUE (for example account_id=42)")
    validate_keys({name: value})
    return name, value


def parse_keys(texts: Iterable[str]) -> dict[str, str]:
    """Several ``NAME=VALUE`` texts as one keys mapping; a repeated name is refused
    rather than silently keeping the last value."""
    keys: dict[str, str] = {}
    for name, value in map(parse_key, texts):
        if name in keys:
            raise ValueError(f"key {name!r} given twice; a message has one value per key")
        keys[name] = value
    return keys


def parse_ports(text: str) -> list[int]:
    """``"8001,8002,8003,8004"`` -> the demo's four ports (0 picks a free one). Three, as
    the demo took before it had a Starlette server, still work: that server takes a free port."""
    try:
        ports = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--ports {text!r} is not four comma-separated numbers") from None
    if len(ports) not in (3, 4) or not all(0 <= port < 65536 for port in ports):
        raise ValueError(
            f"--ports {text!r} must be four ports (Tornado, gevent, Twisted, Starlette), 0-65535"
        )
    return ports if len(ports) == 4 else [*ports, 0]


@contextmanager
def _opened(url: str) -> Iterator[Any]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def format_table(subscriptions: Iterable[Subscription], now: float) -> str:
    """One row per URL: its topics and the seconds until the earliest expires."""
    by_url: dict[str, tuple[list[Topic], float]] = {}
    for sub in subscriptions:
        topics, expires = by_url.setdefault(sub.url, ([], sub.expires_at))
        topics.append(sub.topic)
        by_url[sub.url] = (topics, min(expires, sub.expires_at))
    rows = [("URL", "TOPICS", "EXPIRES IN")]
    for url, (topics, expires) in sorted(by_url.items()):
        rows.append((url, " ".join(map(str, sorted(topics))), f"{max(0.0, expires - now):.0f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{url:<{widths[0]}}  {topics:<{widths[1]}}  {expires}" for url, topics, expires in rows)


def listeners(args: argparse.Namespace) -> int:
    """``skyhooks listeners``: who listens, for what, until when."""
    topics = topics_of(parse_keys(args.key)) if args.key else None
    with _opened(args.store) as store:
        subscriptions = store.subscriptions(topics)
    now = time.time()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "url": sub.url,
                        "topic": str(sub.topic),
                        "name": sub.topic.name,
                        "value": sub.topic.value,
                        "expires_in": round(sub.expires_at - now, 1),
                    }
                    for sub in subscriptions
                ],
                indent=2,
            )
        )
    elif subscriptions:
        print(format_table(subscriptions, now))
    else:
        print("nobody is listening" + (" for " + ", ".join(args.key) if args.key else ""))
    return 0


def format_report(report: DeliveryReport) -> str:
    """A delivery report as a few readable lines."""
    lines = [
        f"message {report.message_id}: {len(report.urls)} url(s), "
        f"{len(report.delivered)} delivered, {len(report.failed)} failed, "
        f"notified {report.notified} callback(s)"
    ]
    lines += [f"  delivered  {url}" for url in sorted(report.delivered)]
    lines += [f"  FAILED     {url}: {reason}" for url, reason in sorted(report.failed.items())]
    lines += [f"  pruned     {url}" for url in sorted(report.pruned)]
    return "\n".join(lines)


def notify(args: argparse.Namespace) -> int:
    """``skyhooks notify``: publish one message; exit 1 if any URL failed."""
    keys = parse_keys(args.key)
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise ValueError(f"--data is not JSON: {exc}") from None
    from ..blocking import Publisher  # late: only this command sends

    with Publisher(store=args.store, secret=args.secret) as publisher:
        report = publisher.notify(keys, data)
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1


def purge(args: argparse.Namespace) -> int:
    """``skyhooks purge``: delete expired subscriptions and say how many."""
    with _opened(args.store) as store:
        count = store.purge()
    print(f"purged {count} expired subscription{'s' if count != 1 else ''}")
    return 0
