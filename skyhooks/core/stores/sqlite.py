"""``sqlite:///relative.db`` / ``sqlite:////absolute.db``: the embedded default.

One file shared by every process on a machine (Tornado, gevent and Twisted
instances side by side). WAL mode lets readers run while one writer writes;
every write takes the write lock up front (``BEGIN IMMEDIATE``) so two
processes never deadlock upgrading a read lock, and waits up to
``busy_timeout`` for it. Each thread gets its own connection (sqlite3
connections must not be shared across threads), and a forked child opens its
own instead of inheriting its parent's.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from zope.interface import implementer

from ..errors import ConfigurationError, StoreError, WouldBlock, map_exceptions
from ..forks import reset_in_child
from ..interfaces import IHookStore
from ..keys import Topic
from ..values import Subscription

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS skyhooks_subscriptions (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    url TEXT NOT NULL,
    expires_at REAL NOT NULL,
    -- the primary key doubles as the (name, value) index that lookups use
    PRIMARY KEY (name, value, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS skyhooks_subscriptions_url ON skyhooks_subscriptions (url);
"""

_UPSERT = (
    "INSERT INTO skyhooks_subscriptions (name, value, url, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name, value, url) DO UPDATE SET expires_at = excluded.expires_at"
)

#: Seconds reads may go on from a file removed or replaced meanwhile (writes never do).
_RECHECK = 0.25

#: SQLITE_BUSY, SQLITE_LOCKED (primary result codes): a lock held elsewhere.
_BUSY_CODES = (5, 6)

_ERRORS: dict[type[BaseException], type[StoreError]] = {sqlite3.Error: StoreError}


@implementer(IHookStore)
class SQLiteStore:
    """Subscriptions in one SQLite file, safe for many processes and threads.

    *mmap_size* bytes of the file are read through a memory map (SQLite's
    ``PRAGMA mmap_size``; 0 turns it off): a lookup in a file bigger than a
    connection's 2 MB page cache then reads its pages from memory rather
    than with a ``pread()`` each. At 1M subscriptions that took the p99 of a
    lookup from 11-16 µs to 8-9 (`python -m benchmarks stores`: four runs
    without, three with). The size reserves address space, not memory: only
    the pages read are faulted in, shared with the OS page cache. SQLite maps
    read-only and writes as before. Turn it off for a file on a network
    filesystem, where an I/O error on a mapped page arrives as SIGBUS instead
    of an exception.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = 10.0,
        mmap_size: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database is private to one connection; "
                "use memory:// for a single-process store, or give a file path"
            )
        if type(mmap_size) is not int or mmap_size < 0:
            raise ConfigurationError(f"mmap_size is a number of bytes, 0 to turn it off; not {mmap_size!r}")
        self.path = path
        self._busy_timeout = busy_timeout
        self._mmap_size = mmap_size
        self._clock = clock
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Also in a forked child, which must never use nor close its parent's
        # connections (SQLite's rule): it forgets them and opens its own.
        self._local = _os_thread_local()
        self._lock = threading.Lock()
        # every thread's connection, so close() can close them all
        self._connections: list[sqlite3.Connection] = []

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        prefix = "sqlite:///"
        if not url.lower().startswith(prefix):
            raise ConfigurationError(
                f"SQLite store URLs look like sqlite:///relative/path.db or "
                f"sqlite:////absolute/path.db, not {url!r}"
            )
        return cls(url[len(prefix) :].split("?", 1)[0])

    # -- connections -----------------------------------------------------

    def _connection(self, nowait: bool = False, *, reading: bool = False) -> sqlite3.Connection:
        """This thread's connection; with *nowait*, a second one that never waits
        for a lock (busy_timeout 0), for :meth:`lookup_nowait` (which only reads)."""
        kind = "nowait" if nowait else "conn"
        # (connection, the file's identity when opened, when that was last checked)
        held: tuple[sqlite3.Connection, tuple[int, int] | None, float] | None = getattr(
            self._local, kind, None
        )
        if held is not None:
            conn, file, checked = held
            now = time.monotonic()
            # Reads look at the file's identity at most every _RECHECK seconds
            # (a stat is a third of a lookup's cost); writes, always.
            if (reading or nowait) and now - checked < _RECHECK:
                return conn
            if file == self._file_identity():
                setattr(self._local, kind, (conn, file, now))
                return conn
            # The file was removed or replaced: a connection to the old inode
            # would write where nobody reads. Start afresh.
            self._forget(kind)
        timeout = 0.0 if nowait else self._busy_timeout
        with map_exceptions(_ERRORS, f"opening sqlite store {self.path!r}"):
            # isolation_level=None: we issue BEGIN ourselves, so reads run in
            # autocommit and never hold a lock between calls.
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                _use_wal(conn, timeout)
                conn.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, far faster
                conn.execute(f"PRAGMA mmap_size = {self._mmap_size}")  # (an int: checked above)
                # On every new connection, not once per store: the file may be a new one.
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
        setattr(self._local, kind, (conn, self._file_identity(), time.monotonic()))
        with self._lock:
            self._connections.append(conn)
        return conn

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _forget(self, kind: str) -> None:
        conn, _, _ = getattr(self._local, kind)
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()  # (a forked child never holds its parent's: see _after_fork)
        setattr(self._local, kind, None)

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with map_exceptions(_ERRORS, f"sqlite store {what}"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- IHookStore ------------------------------------------------------

    def add(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        expires_at = self._clock() + ttl
        rows = [(t.name, t.value, url, expires_at) for t in topics]
        if rows:
            with self._write("add") as conn:
                conn.executemany(_UPSERT, rows)

    def remove(self, url: str, topics: Iterable[Topic]) -> None:
        rows = [(t.name, t.value, url) for t in topics]
        if rows:
            with self._write("remove") as conn:
                conn.executemany(
                    "DELETE FROM skyhooks_subscriptions WHERE name = ? AND value = ? AND url = ?", rows
                )

    def remove_url(self, url: str) -> int:
        with self._write("remove_url") as conn:
            return conn.execute("DELETE FROM skyhooks_subscriptions WHERE url = ?", (url,)).rowcount

    def renew(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        expires_at = self._clock() + ttl
        rows = [(t.name, t.value, url, expires_at) for t in topics]
        with self._write("renew") as conn:
            # Mark every row of this url, re-upsert the wanted ones (which clears
            # the mark), then delete what is still marked: topics the instance no
            # longer listens for. One transaction, so readers never see the marks.
            conn.execute("UPDATE skyhooks_subscriptions SET expires_at = -1 WHERE url = ?", (url,))
            conn.executemany(_UPSERT, rows)
            conn.execute("DELETE FROM skyhooks_subscriptions WHERE url = ? AND expires_at = -1", (url,))

    def lookup(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        with map_exceptions(_ERRORS, "sqlite store lookup"):
            return self._lookup(self._connection(reading=True), topics)

    def lookup_nowait(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        """:meth:`lookup`, or :class:`WouldBlock` where that would wait for a lock.

        A WAL reader almost never waits (not for writers, only for recovery or
        an exclusive lock), and a lookup takes 10-20 us: cheaper on an event
        loop than a hand-off to a thread, so event-loop publishers try this
        first and call :meth:`lookup` in a thread only on WouldBlock.
        """
        try:
            return self._lookup(self._connection(nowait=True), topics)
        except (sqlite3.Error, StoreError) as exc:
            cause = exc.__cause__ if isinstance(exc, StoreError) else exc
            if getattr(cause, "sqlite_errorcode", 0) & 0xFF in _BUSY_CODES:
                raise WouldBlock(f"sqlite store lookup: {cause}") from exc
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"sqlite store lookup: {exc}") from exc

    #: sqlite3 waits for file locks inside C, holding the whole thread.
    blocks_natively = True

    def _lookup(self, conn: sqlite3.Connection, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        now = self._clock()
        found: dict[str, set[Topic]] = {}
        # One indexed query per topic: messages name few keys, and each query
        # is a range scan on the primary key, whatever the table's size.
        for topic in topics:
            for (url,) in conn.execute(
                "SELECT url FROM skyhooks_subscriptions WHERE name = ? AND value = ? AND expires_at > ?",
                (topic.name, topic.value, now),
            ):
                found.setdefault(url, set()).add(topic)
        return {url: frozenset(matched) for url, matched in found.items()}

    def purge(self) -> int:
        with self._write("purge") as conn:
            return conn.execute(
                "DELETE FROM skyhooks_subscriptions WHERE expires_at <= ?", (self._clock(),)
            ).rowcount

    def subscriptions(self, topics: Iterable[Topic] | None = None) -> list[Subscription]:
        now = self._clock()
        conn = self._connection(reading=True)
        with map_exceptions(_ERRORS, "sqlite store subscriptions"):
            if topics is None:
                rows = conn.execute(
                    "SELECT name, value, url, expires_at FROM skyhooks_subscriptions WHERE expires_at > ?",
                    (now,),
                ).fetchall()
            else:
                rows = []
                for topic in set(topics):
                    rows += conn.execute(
                        "SELECT name, value, url, expires_at FROM skyhooks_subscriptions "
                        "WHERE name = ? AND value = ? AND expires_at > ?",
                        (topic.name, topic.value, now),
                    ).fetchall()
        subs = [Subscription(Topic(name, value), url, expires_at) for name, value, url, expires_at in rows]
        return sorted(subs, key=lambda row: (row.url, row.topic))

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = _os_thread_local()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (it stays so), waiting up to *timeout* seconds for it.

    Switching the mode needs the file to itself, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection holds a
    lock: of two processes opening a new file at the same moment (instances
    started together), one failed (1 in 180 openings, six processes at once).
    So a locked file is retried, with a short backoff, until the mode is WAL
    (whoever set it) or *timeout* has passed.
    """
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            # A file system without WAL answers with the mode it kept: used as it is.
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return  # another process switched it meanwhile


def _os_thread_local() -> threading.local:
    """Storage per OS thread, even where gevent patched ``threading.local`` to
    mean per greenlet: a connection per greenlet would open one for every
    request a gevent server serves, and keep them all (found by the latency
    benchmark: ~0.3 ms more per message). Greenlets of one thread may share a
    connection, as each call runs to its end without yielding to the hub."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return monkey.get_original("_thread", "_local")()  # type: ignore[no-any-return]
    return threading.local()
