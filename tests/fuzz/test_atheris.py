"""Run the atheris fuzzer over the request parser, bounded, and fail on any crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SECONDS = int(os.environ.get("SKYHOOKS_FUZZ_SECONDS", "60"))


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 120)
def test_fuzz_parse_request(tmp_path, measure):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_parse_request.py"),
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=1024",
            "-timeout=10",
            "-max_len=8192",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=HERE.parent.parent,
        capture_output=True,
        text=True,
        timeout=SECONDS + 90,
    )
    stats = [line for line in result.stderr.splitlines() if line.startswith(("stat::", "#", "Done"))]
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*"))
    numbers = dict(line[len("stat::") :].split(":", 1) for line in stats if line.startswith("stat::"))
    measure(
        fuzz_seconds=SECONDS,
        crashes=len(crashes),
        exit_status=result.returncode,
        **{name: int(value) for name, value in numbers.items() if value.strip().isdigit()},
    )
    assert result.returncode == 0 and not crashes, (
        f"the fuzzer found a crash (exit {result.returncode}); inputs: {crashes}; "
        f"turn each into a regression test.\n{result.stderr[-4000:]}"
    )
    assert int(numbers.get("number_of_executed_units", 0)) > 1000, "the fuzzer hardly ran"
