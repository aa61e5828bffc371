from __future__ import annotations

import pytest

from tests.publishers.drivers import DRIVERS, KINDS, missing


def _kinds() -> list:
    # A publisher whose framework is not installed shows as a skip, never as a silent drop.
    return [
        pytest.param(kind, marks=pytest.mark.skipif(bool(missing(kind)), reason=str(missing(kind))))
        for kind in KINDS
    ]


@pytest.fixture(params=_kinds())
def driver(request):
    made = DRIVERS[request.param]()
    yield made
    made.close()
