"""The ``skyhooks`` command: inspect and exercise a store, or run the demo.

::

    skyhooks listeners --store sqlite:////var/lib/app/hooks.db [--key account_id=42] [--json]
    skyhooks notify --store URL --key account_id=42 --data '{"progress": 100}' [--json]
    skyhooks purge --store URL
    skyhooks demo [--host 127.0.0.1] [--ports 8001,8002,8003,8004] [--store URL] [--secret S]

A secret, and a store URL with a password, are better given as ``$SKYHOOKS_SECRET`` and
``$SKYHOOKS_STORE``: every local user can read a command line.

Every failure the user can cause or fix (a bad store URL, a store that is down, a
malformed key, bad JSON, no secret) is one ``skyhooks: error: ...`` line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..core.errors import SkyhooksError

# Where the secret and the store URL come from when ``--secret`` and ``--store`` are not
# given (the names the demo hands its servers both under; ``skyhooks demo`` itself never
# takes the environment's store, so a demo never writes into the store a shell is set up for).
from ..demo import SECRET_ENV, STORE_ENV
from ._commands import listeners, notify, parse_ports, purge

__all__ = ["SECRET_ENV", "STORE_ENV", "build_parser", "main"]
_MAX_ERROR = 300


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (also used for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="skyhooks", description="Inspect a skyhooks store, publish a message, or run the demo."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def store_option(sub: argparse.ArgumentParser, from_env: bool = True) -> None:
        default = (os.environ.get(STORE_ENV) or None) if from_env else None
        sub.add_argument(
            "--store",
            default=default,
            required=from_env and default is None,
            help="store URL: sqlite:////abs/path.db, sqlite:///rel/path.db, mongodb://host:port/db, "
            f"redis://host:port/0{f' (default: ${STORE_ENV})' if from_env else ''}",
        )

    sub = commands.add_parser("listeners", help="list who listens for which topics, and until when")
    store_option(sub)
    sub.add_argument(
        "--key", action="append", default=[], metavar="NAME=VALUE", help="only these topics (repeatable)"
    )
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.set_defaults(run=listeners)

    sub = commands.add_parser("notify", help="publish one message and print its delivery report")
    store_option(sub)
    sub.add_argument("--secret", help=f"the Standard Webhooks secret (default: ${SECRET_ENV})")
    sub.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="NAME=VALUE",
        help="a key of the message (repeatable, at least one)",
    )
    sub.add_argument("--data", required=True, help="the message data, as JSON")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.set_defaults(run=notify)

    sub = commands.add_parser("purge", help="delete expired subscriptions")
    store_option(sub)
    sub.set_defaults(run=purge)

    sub = commands.add_parser("demo", help="run Tornado, gevent, Twisted and Starlette servers side by side")
    store_option(sub, from_env=False)
    sub.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    sub.add_argument(
        "--ports",
        default="8001,8002,8003,8004",
        metavar="P1,P2,P3,P4",
        help="Tornado, gevent, Twisted and Starlette ports, 0 for a free one (default: %(default)s;"
        " given three, Starlette takes a free port)",
    )
    sub.add_argument(
        "--secret",
        dest="demo_secret",  # optional here: main() insists on a secret only where it is "secret"
        default=os.environ.get(SECRET_ENV),
        help="the servers' Standard Webhooks secret (default: $SKYHOOKS_SECRET, else a new one)",
    )
    sub.set_defaults(run=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    # Imported late: only the demo needs subprocess orchestration.
    from ._demo import run_demo

    return run_demo(host=args.host, ports=parse_ports(args.ports), store=args.store, secret=args.demo_secret)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "secret", False) is None:
        args.secret = os.environ.get(SECRET_ENV) or None
        if args.secret is None:
            parser.exit(2, f"skyhooks: error: no secret: pass --secret or set ${SECRET_ENV}\n")
    try:
        status = args.run(args)
    except (SkyhooksError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if len(message) > _MAX_ERROR:  # driver errors (pymongo's topology dumps) can run to pages
            message = message[: _MAX_ERROR - 3] + "..."
        parser.exit(2, f"skyhooks: error: {message}\n")
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
