"""Every Python block of the README and docs/ runs as written against real Redis.

The test supplies what a block takes from its surroundings (``app``, ``bus``, a dead letter's
``record_id``/``other_id``, ``app_for_tests``), points ``localhost:6379`` at the test Redis and
gives every bus and registry the test's own exchange. The README's Quick start has its own
test with a real worker (``tests/integration/test_readme.py``).
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.conftest import ROOT
from tests.test_deadletter import make
from wowevent_kombu import EventBus

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_URL = "redis://localhost:6379/0"


def python_blocks() -> list[Any]:
    found = []
    for path in DOCS:
        text = path.read_text()
        if path.name == "README.md":  # the Quick start runs in its own test, with a worker
            start = text.index("\n## Quick start\n")
            end = text.index("\n## ", start + 1)
            text = text[:start] + "\n" * text[start:end].count("\n") + text[end:]
        for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, flags=re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            name = f"{path.relative_to(ROOT)}:{line}"
            found.append(pytest.param(textwrap.dedent(match.group(2)), id=name))
    return found


def fill(code: str, redis_url: str, exchange: str) -> str:
    """The test's placeholders: its Redis, its exchange, and a consume loop that ends."""
    code = code.replace(
        f'SchemaRegistry.from_url("{README_URL}")',
        f'SchemaRegistry.from_url("{redis_url}", namespace="{exchange}")',
    )
    code = code.replace(README_URL, redis_url)
    return code.replace('group="reporting")', 'group="reporting", timeout=0.2)')


@pytest.mark.parametrize("code", python_blocks())
def test_every_python_block_of_the_docs_runs(code, redis_url, exchange, tmp_path, monkeypatch):
    monkeypatch.setenv("WOWEVENT_EXCHANGE", exchange)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").mkdir()
    app = Celery("docs", broker=redis_url, set_as_current=False)
    binder = EventBus(app)

    @binder.subscriber("order.*", name="billing")
    def bill(event: Any) -> None: ...

    @binder.subscriber(["order.#", "payment.*"], name="audit")
    def audit(event: Any) -> None: ...

    binder.declare()
    for n, correlation in enumerate(("req-7", "req-42", "req-42")):
        binder.publish("order.created", {"order_id": str(n)}, source="checkout",
                       correlation_id=correlation)  # fmt: skip
    for n in range(2):
        binder.dead_letters.write(make(n, at=time.time() - 60 + n))
    namespace: dict[str, Any] = {
        "app": Celery("docs", broker=redis_url, set_as_current=False),
        "bus": EventBus(Celery("docs", broker=redis_url, set_as_current=False)),
        "record_id": "rec-00000",
        "other_id": "rec-00001",
        "app_for_tests": Celery("tests", set_as_current=False),
    }
    buses = [binder, namespace["bus"]]
    try:
        exec(compile(fill(code, redis_url, exchange), "<docs>", "exec"), namespace)
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value):
                value()  # a block that defines a test: run it
    finally:
        buses += [v for v in namespace.values() if isinstance(v, EventBus)]
        for bus in buses:
            bus.close()


def test_every_doc_with_python_is_covered():
    covered = {p.id.split(":")[0] for p in python_blocks()}
    assert {"README.md", "docs/guide.md", "docs/dead-letters.md", "docs/event-log.md"} <= covered
    assert Path(ROOT / "docs" / "schemas.md").relative_to(ROOT).as_posix() in covered
