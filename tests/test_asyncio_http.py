"""The asyncio publishers' own HTTP/1.1 client (skyhooks/_asyncio_http.py, asyncio
streams, no framework): every case of ``http_client_cases``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from skyhooks._asyncio_http import Http1Pool
from tests.adapters.http_client_cases import CASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_asyncio_client(case: Callable[..., object]) -> None:
    async def scenario() -> None:
        pool = Http1Pool(4)
        try:
            await case(pool)  # type: ignore[misc]
        finally:
            pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
