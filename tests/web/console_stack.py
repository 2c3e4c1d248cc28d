"""What the console's browser tests run against: Redis, a worker, ``wowevent serve``, Chromium.

One of each per test module (starting Chromium and a worker costs seconds; the tests share
them and keep apart by event type and id). Chromium is Debian's (``scripts/ensure-chromium.sh``
installs it); Playwright never downloads a browser here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import ROOT, Worker, wait_for
from tests.integration.serving import app_env, serving
from wowevent_kombu import EventBus

APP = "tests.apps.console"
ADMIN_TOKEN = "console-admin-" + "a" * 24
READ_TOKEN = "console-read-" + "r" * 24
CHROMIUM = os.environ.get("WOWEVENT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = ROOT / (os.environ.get("WOWEVENT_SCREENSHOTS") or ".run/screenshots")
"""Where each page's screenshot goes: ``make screenshots`` points it at ``docs/console``;
the suite otherwise leaves the committed pictures alone."""
VIEWPORT = {"width": 1280, "height": 800}


@dataclasses.dataclass
class Stack:
    """The running services of one test module."""

    url: str
    exchange: str
    client: redis.Redis
    bus: EventBus

    def failing(self, on: bool) -> None:
        """Make the ``fragile`` subscriber fail (straight to the dead letters) or succeed."""
        key = f"{self.exchange}:test:failing"
        if on:
            self.client.set(key, "1")
        else:
            self.client.delete(key)

    def runs(self, subscriber: str, event_id: str) -> list[dict[str, Any]]:
        """The recorded runs of ``subscriber`` for one event, in order."""
        entries = [json.loads(r) for r in self.client.lrange(f"{self.exchange}:seen", 0, -1)]
        return [e for e in entries if e["subscriber"] == subscriber and e["id"] == event_id]

    def dead_letter_of(self, event_id: str) -> str:
        """The id of ``fragile``'s dead letter for one event, once it is recorded."""

        def found() -> str | None:
            page = self.bus.dead_letters.list(subscriber="fragile", limit=1000)
            return next((r.id for r in page.records if r.event_id == event_id), None)

        return str(wait_for(found, 20, 0.05, f"the dead letter of {event_id}"))


def chromium_or_skip() -> str:
    """The system Chromium; missing, the test fails under CI and is skipped elsewhere."""
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A worker of the console app and ``wowevent serve`` with both tokens, on a fresh exchange."""
    exchange = f"t{uuid.uuid4().hex[:10]}"
    logs = tmp_path_factory.mktemp("console")
    client = redis.Redis.from_url(redis_url)
    env = app_env(redis_url, exchange)
    worker = Worker(
        APP, env, logs / "worker.log", ["-P", "solo", "-c", "1", "-n", f"{exchange}@%h"]
    )
    bus = EventBus(Celery("publisher", broker=redis_url, set_as_current=False), exchange=exchange)
    try:
        worker.wait_ready()
        with serving(
            redis_url, exchange, logs / "serve.log", app=f"{APP}:app",
            WOWEVENT_ADMIN_TOKEN=ADMIN_TOKEN, WOWEVENT_READ_TOKEN=READ_TOKEN,
        ) as (_, url):  # fmt: skip
            yield Stack(url, exchange, client, bus)
    finally:
        worker.stop(timeout=10)
        bus.close()
        doomed = [*client.scan_iter(match=f"{exchange}*", count=1000)]
        doomed += [f"_kombu.binding.{exchange}", f"_kombu.binding_permanent.{exchange}"]
        client.delete(*doomed)
        client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def screenshot(page: Any, name: str) -> None:
    """Write the page as ``<SCREENSHOTS>/<name>.png`` (``docs/console/`` for the docs)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
