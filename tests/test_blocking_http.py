"""The blocking (and gevent) publishers' HTTP/1.1 client (skyhooks/_blocking_http.py):
every case of ``tests/adapters/http_client_cases``, each blocking call in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from skyhooks._blocking_http import BlockingHttp1Pool
from tests.adapters.http_client_cases import CASES


class InThreads:
    """The cases await ``pool.post(...)``: run each blocking call in a thread."""

    def __init__(self, pool: BlockingHttp1Pool) -> None:
        self.pool = pool

    async def post(self, *args: Any) -> Any:
        return await asyncio.to_thread(self.pool.post, *args)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_blocking_client(case: Callable[..., Any]) -> None:
    pool = BlockingHttp1Pool(4)
    try:
        asyncio.run(asyncio.wait_for(case(InThreads(pool)), 20))
    finally:
        pool.close()
