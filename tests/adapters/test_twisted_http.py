"""The Twisted publisher's own HTTP/1.1 client (skyhooks/twisted/_http.py): every
case of ``http_client_cases``, as trial tests on the real reactor."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.http_client_cases import CASES

pytest.importorskip("twisted")

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from skyhooks.twisted._http import Http1Pool


class TwistedClientTests(TestCase):
    timeout = 20


def _test(case: Any) -> Any:
    async def test(self: TestCase) -> None:
        pool = Http1Pool(reactor, 4)
        try:
            await case(pool)
        finally:
            pool.close()
            # aborted connections finish closing on the next reactor turns (trial checks)
            await deferLater(reactor, 0.05, lambda: None)

    test.__name__ = f"test_{case.__name__}"
    return test


for _case in CASES:
    setattr(TwistedClientTests, f"test_{_case.__name__}", _test(_case))
