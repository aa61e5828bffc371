"""The asyncio publishers' own HTTP/1.1 client (skyhooks/_asyncio_http.py, asyncio
streams, no framework): every case of ``http_client_cases``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from skyhooks._asyncio_http import Http1Pool
from tests.adapters.http_client_cases import CASES, HEADERS, reply
from tests.support.raw_http import RawServer


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_asyncio_client(case: Callable[..., object]) -> None:
    async def scenario() -> None:
        pool = Http1Pool(4)
        try:
            await case(pool)  # type: ignore[misc]
        finally:
            pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_pool_outlives_its_loop_and_serves_the_next_one() -> None:
    """A publisher made once and used from successive loops (asyncio.run twice, a
    test's loop per test): a connection kept on the first loop is never used on
    the second (it would fail with 'Event loop is closed'), and close() after
    the loops have ended closes without raising."""
    pool = Http1Pool(4)
    with RawServer(lambda n, head, body: reply()) as server:

        async def post_twice() -> None:
            for _ in range(2):  # the second reuses the first's connection
                assert (await pool.post(server.url, HEADERS, b"{}", 2)).status == 200

        asyncio.run(post_twice())
        asyncio.run(post_twice())
        assert server.connections == 2  # one per loop
    pool.close()


def test_a_pool_shared_by_loops_in_two_threads_hands_each_its_own_connections() -> None:
    pool = Http1Pool(4)
    with RawServer(lambda n, head, body: reply()) as server:
        loop = asyncio.new_event_loop()
        other = threading.Thread(target=loop.run_forever)
        other.start()
        try:
            post = pool.post(server.url, HEADERS, b"{}", 2)
            assert asyncio.run_coroutine_threadsafe(post, loop).result(10).status == 200
            # The other loop's idle connection is closed on that loop, not used here.
            assert asyncio.run(pool.post(server.url, HEADERS, b"{}", 2)).status == 200
            assert server.connections == 2
        finally:
            loop.call_soon_threadsafe(loop.stop)
            other.join(10)
            loop.close()
    pool.close()
