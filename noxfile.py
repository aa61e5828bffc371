"""Every test session. ``scripts/test`` runs the default ones; ``nox -s NAME`` runs one.

One helper installs the extras a session needs and runs pytest (the urllib3 /
gidgethub pattern), so sessions differ only in their extras and test paths.

Every session installs from ``constraints.txt``, the lock kept in the repo, so
a run today and a run next month test the same dependencies; ``pyproject.toml``
keeps version ranges for users. ``nox -s latest`` (not in the default set)
runs the suite against the newest releases instead, so drift is seen on
purpose. Refresh the lock with ``nox -s lock`` (README, "Contributing").
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "core",
    "publishers",
    "stores",
    "tests_tornado",
    "tests_gevent",
    "tests_twisted",
    "tests_asyncio",
    "lint",
    "types",
    "cli",
    "integration",
    "browser",
    "reliability",
    "bench",
]

LOCK = "constraints.txt"


def install(session: nox.Session, extras: str) -> None:
    """skyhooks with *extras*, every dependency pinned by the lock (unless the session is ``latest``)."""
    pins = () if session.name == "latest" else ("-c", LOCK)
    session.install(*pins, "-e", f".[{extras}]")


def run_pytest(session: nox.Session, extras: str, *args: str) -> None:
    install(session, extras)
    session.run("pytest", *args, *session.posargs)


@nox.session
def core(session: nox.Session) -> None:
    """The core with no framework, driver or extra installed: it must import and work alone."""
    run_pytest(
        session,
        "test",
        "tests/core",
        "tests/test_imports.py",
        "tests/test_publisher.py",
        "tests/test_blocking_transport.py",
        "tests/test_asyncio.py",
        "tests/test_asgi.py",
        "tests/test_wsgi.py",
        "tests/test_submit.py",
        "tests/test_fork.py",
        "tests/test_coalescing.py",
    )


@nox.session
def publishers(session: nox.Session) -> None:
    """The publisher contract suite: every publisher (blocking, Tornado, gevent, Twisted)
    through an in-memory transport, in one process."""
    run_pytest(session, "test,tornado,gevent,twisted", "tests/publishers")


@nox.session
@nox.parametrize("store", ["memory", "sqlite", "mongodb", "redis", "redis-cluster"])
def stores(session: nox.Session, store: str) -> None:
    """The store contract suite against one store."""
    drivers = {"mongodb": "mongodb", "redis": "redis", "redis-cluster": "redis"}
    extras = f"test,{drivers[store]}" if store in drivers else "test"
    run_pytest(session, extras, "tests/stores", f"--store={store}")


@nox.session
def tests_tornado(session: nox.Session) -> None:
    run_pytest(
        session,
        "test,tornado,mongodb",
        "tests/adapters/test_behaviour.py",
        "tests/adapters/test_tornado_specific.py",
        "tests/test_asyncio.py",
        "tests/test_coalescing.py",  # its Tornado publisher case runs here
        "--framework=tornado",
    )
    # The behaviour suite once more with the RequestHandler endpoint (the first run served WebhookDelegate).
    session.run(
        "pytest",
        "tests/adapters/test_behaviour.py",
        "--framework=tornado",
        *session.posargs,
        env={"SKYHOOKS_TEST_TORNADO_ENDPOINT": "WebhookHandler"},
    )


@nox.session
def tests_gevent(session: nox.Session) -> None:
    run_pytest(
        session,
        "test,gevent,mongodb",
        "tests/adapters/test_behaviour.py",
        "tests/adapters/test_gevent_specific.py",
        "--framework=gevent",
    )


@nox.session
def tests_twisted(session: nox.Session) -> None:
    run_pytest(
        session,
        "test,twisted,mongodb",
        "tests/adapters/test_behaviour.py",
        "tests/adapters/test_twisted_specific.py",
        "tests/adapters/test_twisted_http.py",
        "--framework=twisted",
    )


@nox.session
def tests_asyncio(session: nox.Session) -> None:
    """WebhookASGI under uvicorn and aiohttp's WebhookHandler, each in its own process, and the
    asyncio Publisher over its default client (aiohttp)."""
    run_pytest(
        session,
        "test,asyncio,aiohttp,mongodb",
        "tests/adapters/test_behaviour.py",
        "tests/adapters/test_asyncio_specific.py",
        "tests/test_asgi.py",
        "tests/test_asyncio.py",
        "--framework=asgi",
        "--framework=aiohttp",
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-c", LOCK, "ruff")
    session.run("ruff", "check", "skyhooks", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "--diff", "skyhooks", "tests", "benchmarks", "noxfile.py")


@nox.session
def types(session: nox.Session) -> None:
    install(session, "types,all")
    session.run("mypy", "skyhooks")


@nox.session
def cli(session: nox.Session) -> None:
    """The skyhooks command and the mixed-stack demo (Tornado, gevent, Twisted and Starlette side by side)."""
    run_pytest(
        session,
        "test,demo,redis",
        "tests/test_cli.py",
        "tests/test_cli_redis.py",
        "tests/test_demo.py",
    )


@nox.session
def integration(session: nox.Session) -> None:
    """Across processes: a real Celery worker, the three frameworks side by side on SQLite,
    MongoDB, Redis and Redis Cluster, the command against a running demo."""
    run_pytest(session, "test,demo,asyncio,aiohttp,mongodb,redis,examples", "tests/integration")


@nox.session
def browser(session: nox.Session) -> None:
    """The demo in headless Chromium (Debian's) driven by Playwright; prints the latency."""
    run_pytest(session, "test,demo,browser", "tests/browser", "-s")


@nox.session
def reliability(session: nox.Session) -> None:
    """Faults, soak and fuzz across real processes (the partition test needs root and
    iproute2, and says so when it skips)."""
    run_pytest(session, "test,fuzz,tornado,gevent,twisted,mongodb,redis", "tests/reliability", "tests/fuzz")


@nox.session
def bench(session: nox.Session) -> None:
    """A small run of the benchmark harness: it runs, counts what it sends, loses nothing
    (no timing assertions; the figures come from ``python -m benchmarks all``)."""
    run_pytest(session, "test,tornado,gevent,twisted,bench", "tests/test_benchmarks_smoke.py")


@nox.session
def latest(session: nox.Session) -> None:
    """Not in the default set: the core, store and adapter suites against the newest
    releases of every dependency (no lock), to see drift before the lock moves."""
    install(session, "test,all")
    session.run("pytest", "tests/core", "tests/stores", "--store=sqlite", *session.posargs)
    session.run("pytest", "tests/publishers", *session.posargs)
    for framework, specific in [
        ("tornado", "tornado"),
        ("gevent", "gevent"),
        ("twisted", "twisted"),
        ("asgi", "asyncio"),
        ("aiohttp", "asyncio"),
    ]:
        suites = ["tests/adapters/test_behaviour.py", f"tests/adapters/test_{specific}_specific.py"]
        session.run("pytest", *suites, f"--framework={framework}", *session.posargs)


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Write constraints.txt anew from pyproject.toml's ranges: the newest releases that fit.
    ``nox -s lock -- --keep`` keeps every existing pin and only adds what a new dependency needs."""
    keep = "--keep" in session.posargs
    session.run(
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--all-extras",
        *(() if keep else ("--upgrade",)),
        "--no-header",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-unknown-linux-gnu",
        "-o",
        LOCK,
    )
