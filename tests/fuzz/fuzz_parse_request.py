"""Coverage-guided fuzzing of the request parser with atheris (libFuzzer).

Run by ``test_atheris.py`` as ``python fuzz_parse_request.py -max_total_time=60 ...``.
Each input becomes a method, headers and a body; most are then signed with the
right secret (as a hostile but authorised sender would), so the fuzzer spends its
time behind the signature check, in the JSON, key and batch rules. Anything
``Verifier.parse`` raises other than ``RequestError`` (with a 4xx status) is a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
import time

import atheris

with atheris.instrument_imports():
    from skyhooks.core.errors import RequestError
    from skyhooks.core.wire import Verifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_") :])
VERIFIER = Verifier(SECRET, max_body_size=64 * 1024)
NAMES = [
    "content-type",
    "Content-Type",
    "webhook-id",
    "WEBHOOK-ID",
    "webhook-timestamp",
    "webhook-signature",
    "x-other",
]
# Seeds for the body: the fuzzer mutates from these towards the interesting shapes.
SHAPES = [
    b'{"keys":{"account_id":42},"data":{"x":[1,2.5,"s",null,true]}}',
    b'{"messages":[{"id":"m1","keys":{"a":"b"},"data":1},{"id":"m2","keys":{"c":1}}]}',
    b'{"keys":{"a":1},"data":[[[[[[[[[[]]]]]]]]]]}',
]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 7)
    method = "POST" if mode else fdp.ConsumeUnicodeNoSurrogates(6)
    message_id = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40)) or "msg_1"
    timestamp = str(int(time.time())) if mode > 1 else fdp.ConsumeUnicodeNoSurrogates(16)
    headers = {"content-type": "application/json" if mode > 2 else fdp.ConsumeUnicodeNoSurrogates(30)}
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        headers[NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]] = fdp.ConsumeUnicodeNoSurrogates(20)
    body = SHAPES[fdp.ConsumeIntInRange(0, len(SHAPES) - 1)] if mode == 7 else fdp.ConsumeBytes(4096)
    signed = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    headers.update(
        {
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + signature if mode > 1 else fdp.ConsumeUnicodeNoSurrogates(60),
        }
    )
    try:
        VERIFIER.parse(method, headers, body)
    except RequestError as exc:
        if not (400 <= exc.status < 500 and exc.reason):
            raise AssertionError(f"bad RequestError {exc!r}") from exc


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
