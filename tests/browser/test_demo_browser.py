"""The demo in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``)
driven by Playwright for Python (the PyPI ``playwright`` package, whose bundled
node driver works with ``executable_path=/usr/bin/chromium``; ``playwright install``
is never run, and npm's playwright-core is not needed).

``skyhooks demo`` runs four servers (Tornado, gevent, Twisted, Starlette) on free
ports. Four pages watch account 42, one on each server, and a fifth watches
account 7. "Run task" on one page (Starlette's) starts the demo's worker process;
every 42-page must show every progress step, the result and the delivery counts
(four callbacks each), and the 7-page nothing.
Then this test publishes time-stamped messages with the blocking
``skyhooks.Publisher`` and each page records ``Date.now()`` as each arrives: the
publish-to-browser latency (p50/max) is printed. A screenshot is saved under the
test's tmp_path and checked.
"""

from __future__ import annotations

import os
import shutil
import statistics
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyhooks import Publisher
from tests.support.demo import Demo, running_demo

pytestmark = pytest.mark.slow
pytest.importorskip("tornado")
pytest.importorskip("gevent")
pytest.importorskip("twisted")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("SKYHOOKS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEPS = 5  # the demo worker's default
LATENCY_MESSAGES = 20
TIMEOUT_MS = 30_000

# Runs before the page's own script: records every SSE message with its arrival time.
RECORD_ARRIVALS = """
window.__arrivals = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      window.__arrivals.push({at: Date.now(), message: JSON.parse(event.data)});
    });
  }
};
"""


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup-system")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 900, "height": 700},
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(RECORD_ARRIVALS)
        try:
            yield context
        finally:
            context.close()  # ends Chromium, which Playwright started and tracks by pid


def open_page(browser: Any, url: str, account: str) -> Any:
    """A demo page listening for *account* from the start (``?account_id=``)."""
    page = browser.new_page()
    page.goto(f"{url}?account_id={account}")
    sync_api.expect(page.locator("#state")).to_have_text(f"listening for account {account}")
    return page


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", header
    return struct.unpack(">II", header[16:24])


def test_run_task_reaches_every_page_of_the_account(demo: Demo, browser: Any, tmp_path: Path) -> None:
    pages = {framework: open_page(browser, url, "42") for framework, url in demo.pages.items()}
    other = open_page(browser, demo.pages["gevent"], "7")

    pages["asgi"].click("#run")
    started = pages["asgi"].locator("#log tr", has_text="started task")
    sync_api.expect(started).to_have_count(1)
    task = started.inner_text().split()[2]

    for framework, page in pages.items():
        sync_api.expect(page.locator("#log tr.result")).to_have_count(1, timeout=TIMEOUT_MS)
        # Each message's delivery report fills in its row's count: all four pages' callbacks.
        counted = page.locator("#log td.n", has_text=f"notified {len(pages)} callbacks")
        sync_api.expect(counted).to_have_count(STEPS + 1)
        # Newest first on the page; oldest first here.
        rows = page.locator("#log tr td:first-child").all_inner_texts()[::-1]
        rows = [row for row in rows if not row.startswith("started task")]
        assert rows[:-1] == [f"task {task}: step {step} of {STEPS}" for step in range(1, STEPS + 1)], rows
        assert len(rows) == STEPS + 1 and rows[-1].startswith(f"task {task}: done: {STEPS} steps"), rows
        kinds = [a["message"]["data"]["kind"] for a in page.evaluate("window.__arrivals")]
        assert kinds.count("progress") == STEPS and kinds.count("result") == 1, (framework, kinds)

    # Latency: publish from this process, as a job would, stamped with time.time().
    with Publisher(store=demo.store, secret=demo.secret) as publisher:
        for step in range(1, LATENCY_MESSAGES + 1):
            data = {"kind": "progress", "task": "latency", "step": step, "of": LATENCY_MESSAGES}
            report = publisher.notify({"account_id": 42}, {**data, "sent": time.time()})
            assert report.notified == len(pages) and not report.failed, report
            publisher.notify(
                {"account_id": 42}, {"kind": "report", "ref": report.message_id, "notified": report.notified}
            )
            time.sleep(0.05)
    latencies = []
    for page in pages.values():
        sync_api.expect(page.locator("#log tr", has_text="task latency:")).to_have_count(LATENCY_MESSAGES)
        arrivals = [a for a in page.evaluate("window.__arrivals") if "sent" in a["message"]["data"]]
        assert [a["message"]["data"]["step"] for a in arrivals] == list(range(1, LATENCY_MESSAGES + 1))
        latencies += [a["at"] - a["message"]["data"]["sent"] * 1000 for a in arrivals]
    p50, worst = statistics.median(latencies), max(latencies)
    print(f"\npublish -> browser latency, {len(latencies)} deliveries: p50 {p50:.1f} ms, max {worst:.1f} ms")
    assert min(latencies) > -50, latencies  # one clock: an arrival before its publish is a bug
    assert worst < 5000, latencies

    # Account 7's page saw nothing of any of it.
    sync_api.expect(other.locator("#state")).to_have_text("listening for account 7")
    assert other.locator("#log tr").count() == 0
    assert other.evaluate("window.__arrivals") == []

    shot = tmp_path / "demo-asgi.png"
    pages["asgi"].screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot)
    assert (width, height) >= (900, 700) and shot.stat().st_size > 20_000, (width, height, shot.stat())
    text = pages["asgi"].inner_text("body")
    assert "skyhooks demo, served by Starlette" in text
    assert f"task {task}: done: {STEPS} steps" in text
    print(f"screenshot: {shot} ({width}x{height}, {shot.stat().st_size} bytes)")
