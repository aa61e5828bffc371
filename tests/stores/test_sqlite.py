"""What only SQLite promises: WAL, indexes, many processes and threads at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest

from skyhooks import Topic, open_store
from skyhooks.core import ConfigurationError

pytestmark = pytest.mark.usefixtures("only_sqlite")


@pytest.fixture
def only_sqlite(request):
    names = request.config.getoption("--store")
    if names and "sqlite" not in names:
        pytest.skip("SQLite-specific tests run in the sqlite store session")


def test_wal_and_indexes(sqlite_url):
    store = open_store(sqlite_url)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    path = sqlite_url[len("sqlite:///") :]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = " ".join(
        row[-1]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT url FROM skyhooks_subscriptions "
            "WHERE name = 'a' AND value = '1' AND expires_at > 0"
        )
    )
    assert "USING PRIMARY KEY" in plan or "USING INDEX" in plan, plan
    plan = " ".join(
        row[-1]
        for row in conn.execute("EXPLAIN QUERY PLAN DELETE FROM skyhooks_subscriptions WHERE url = 'x'")
    )
    assert "skyhooks_subscriptions_url" in plan, plan
    store.close()


def test_relative_and_absolute_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db")
    relative.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    assert (tmp_path / "rel.db").exists()
    absolute = open_store(f"sqlite:///{tmp_path / 'abs.db'}")  # sqlite:////tmp/...
    absolute.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    assert (tmp_path / "abs.db").exists()
    relative.close()
    absolute.close()


def test_in_memory_database_is_refused():
    with pytest.raises(ConfigurationError, match="memory://"):
        open_store("sqlite:///:memory:")


def _writer(url: str, worker: int, count: int) -> None:
    store = open_store(url)
    for i in range(count):
        store.add(f"http://127.0.0.1:{10000 + worker}/h", {Topic("n", str(i))}, ttl=600)
        if i % 10 == 0:
            store.renew(
                f"http://127.0.0.1:{10000 + worker}/h", {Topic("n", str(j)) for j in range(i + 1)}, ttl=600
            )
    store.close()


def test_many_processes_and_threads_write_at_once(sqlite_url):
    processes, count = 4, 150
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(sqlite_url, w, count)) for w in range(processes)]
    for worker in workers:
        worker.start()
    # meanwhile, threads of this process write too, through one shared store object
    store = open_store(sqlite_url)
    threads = [threading.Thread(target=_writer, args=(sqlite_url, 100 + t, count)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    rows = store.subscriptions()
    assert len(rows) == (processes + 3) * count  # nothing lost
    for i in (0, 77, count - 1):
        assert len(store.lookup({Topic("n", str(i))})) == processes + 3
    store.close()


def test_a_removed_and_recreated_file_is_followed(sqlite_url):
    """Regression: each thread kept its connection to the removed file's inode."""
    import os

    path = sqlite_url[len("sqlite:///") :]
    store = open_store(sqlite_url)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=60)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    store.renew("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=60)  # the healing write
    other = open_store(sqlite_url)
    assert other.lookup({Topic("a", "1")}) == {"http://127.0.0.1:1/h": frozenset({Topic("a", "1")})}
    store.close()
    other.close()


def test_lookup_nowait_never_waits_for_a_lock(sqlite_url):
    """Event-loop publishers read in place with lookup_nowait; a lock makes it
    raise WouldBlock at once (they then read in a thread), never wait."""
    from skyhooks.core.errors import WouldBlock

    store = open_store(sqlite_url)
    topic = Topic("a", "1")
    store.add("http://127.0.0.1:1/h", {topic}, ttl=10)
    assert store.lookup_nowait({topic}) == {"http://127.0.0.1:1/h": frozenset({topic})}
    store.close()  # (the lock below can only be taken with no other connection open)
    # An exclusive-mode writer is the one thing that shuts WAL readers out.
    holder = sqlite3.connect(sqlite_url[len("sqlite:///") :], isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM skyhooks_subscriptions WHERE url = 'nobody'")
    holder.execute("COMMIT")  # exclusive mode keeps the lock after the commit
    try:
        started = time.monotonic()
        with pytest.raises(WouldBlock):
            store.lookup_nowait({topic})
        assert time.monotonic() - started < 0.5
    finally:
        holder.close()
    assert store.lookup_nowait({topic}) == {"http://127.0.0.1:1/h": frozenset({topic})}
    store.close()


def _hold_a_write_lock(path: str) -> sqlite3.Connection:
    """A file still in rollback-journal mode, with another connection about to
    write it: as it is while a second process opens a new store file at the same
    moment (and creates the schema)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
    holder.execute("BEGIN IMMEDIATE")  # a RESERVED lock until COMMIT
    holder.execute("INSERT INTO other VALUES (1)")
    return holder


def test_a_new_file_locked_by_another_connection_is_waited_for(tmp_path):
    # SQLite refuses the switch to WAL at once, without its busy handler, while
    # another connection holds a lock: two instances started together had one fail.
    path = tmp_path / "hooks.db"
    holder = _hold_a_write_lock(str(path))
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    store = open_store(f"sqlite:///{path}")
    started = time.monotonic()
    store.add("http://127.0.0.1:1/h", {Topic("n", "1")}, ttl=60)
    assert time.monotonic() - started >= 0.2  # it waited for the lock
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    holder.close()


def test_a_new_file_locked_for_longer_than_the_busy_timeout_fails_with_store_error(tmp_path):
    from skyhooks.core.errors import StoreError
    from skyhooks.core.stores.sqlite import SQLiteStore

    path = tmp_path / "hooks.db"
    holder = _hold_a_write_lock(str(path))
    store = SQLiteStore(str(path), busy_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="database is locked"):
        store.add("http://127.0.0.1:1/h", {Topic("n", "1")}, ttl=60)
    assert 0.1 <= time.monotonic() - started < 2
    holder.close()
    store.close()


@pytest.mark.parametrize("mmap_size", [256 * 1024 * 1024, 1 << 20, 0])
def test_reads_go_through_a_memory_map_of_the_size_asked(tmp_path, mmap_size):
    from skyhooks.core.stores.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "hooks.db"), mmap_size=mmap_size)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    assert store.lookup({Topic("a", "1")}) == {"http://127.0.0.1:1/h": frozenset({Topic("a", "1")})}
    # Each connection's own setting (capped by how SQLite was compiled: never above what was asked).
    applied = store._connection(reading=True).execute("PRAGMA mmap_size").fetchone()[0]
    ceiling = sqlite3.connect(":memory:").execute(f"PRAGMA mmap_size = {mmap_size}").fetchone()
    assert applied == (ceiling[0] if ceiling else mmap_size)
    store.close()


@pytest.mark.parametrize("mmap_size", [-1, 1.5, "big", True])
def test_a_bad_mmap_size_says_what_it_takes(tmp_path, mmap_size):
    from skyhooks.core.stores.sqlite import SQLiteStore

    with pytest.raises(ConfigurationError, match="mmap_size is a number of bytes"):
        SQLiteStore(str(tmp_path / "hooks.db"), mmap_size=mmap_size)
