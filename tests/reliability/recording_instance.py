"""An instance program whose callbacks also write every message to a file.

``python -m tests.reliability.recording_instance <framework> --store ... --secret ...``
runs ``tests/adapters/instances/<framework>.py`` unchanged, except that
``Recorder.record`` first appends ``<callback name> <message id> <unix time>`` to
the file named by ``SKYHOOKS_SIDE_CHANNEL`` (one ``write`` per line, so what a
callback recorded survives ``kill -9`` and SIGTERM). With
``SKYHOOKS_SIDE_CHANNEL_ONLY=1`` nothing is kept in memory, so a soak run's
RSS measures skyhooks rather than the recorder.
"""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["gevent"]:
    from gevent import monkey

    monkey.patch_all()

import os
import runpy
import time

from tests.adapters.instances import common


def main() -> None:
    framework = sys.argv[1]
    channel = open(os.environ["SKYHOOKS_SIDE_CHANNEL"], "a", buffering=1)  # noqa: SIM115 - process-long
    keep = os.environ.get("SKYHOOKS_SIDE_CHANNEL_ONLY") != "1"
    record = common.Recorder.record

    def recording(self: common.Recorder, name: str, message: object) -> None:
        channel.write(f"{name} {message.id} {time.time():.6f}\n")  # type: ignore[attr-defined]
        if keep:
            record(self, name, message)  # type: ignore[arg-type]

    common.Recorder.record = recording  # type: ignore[method-assign]
    module = f"tests.adapters.instances.{framework}"
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
