"""Pytest plugin: print events in / handled / duplicates / lost for ``test_faults.py``.

``test_faults.py`` counts inside each test; this plugin watches the helpers it counts with
(``all_handled`` and ``missing`` get the ids that must be handled, ``runs`` reads the
executions, ``publisher`` makes the bus whose ``replay`` calls are counted, since a delivery
re-sent from the log would hide a loss) and reports their last values once the test has run.
Load it with ``-p tests.reliability.faultcounts -s``; lines start with ``RELIABILITY`` and are
also appended to ``$WOWEVENT_RELIABILITY_REPORT``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.counting import report, tally


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    module = getattr(item, "module", None)
    if module is None or not module.__name__.endswith("test_faults"):
        yield
        return
    seen: dict[str, Any] = {"replayed": 0}
    originals = {
        name: getattr(module, name)
        for name in ("runs", "all_handled", "missing", "publisher")
        if hasattr(module, name)
    }

    def runs(client: Any, exchange: str) -> Any:
        seen["counts"] = originals["runs"](client, exchange)
        return seen["counts"]

    def all_handled(client: Any, exchange: str, ids: list[str]) -> bool:
        seen["ids"] = list(ids)
        return bool(originals["all_handled"](client, exchange, ids))

    def missing(client: Any, exchange: str, ids: list[str]) -> Any:
        seen["ids"] = list(ids)
        return originals["missing"](client, exchange, ids)

    def publisher(*args: Any, **kwargs: Any) -> Any:
        bus = originals["publisher"](*args, **kwargs)
        replay = bus.replay

        def counted_replay(subscribers: Any, *rest: Any, **options: Any) -> Any:
            seen["replayed"] += len(subscribers)  # a re-delivery from the log, not the queue
            return replay(subscribers, *rest, **options)

        bus.replay = counted_replay
        return bus

    wrappers = {"runs": runs, "all_handled": all_handled, "missing": missing,
                "publisher": publisher}  # fmt: skip
    for name in originals:
        setattr(module, name, wrappers[name])
    try:
        outcome = yield
    finally:
        for name, original in originals.items():
            setattr(module, name, original)
    if "ids" in seen and "counts" in seen:
        figures = tally(seen["counts"], module.SUBSCRIBERS, seen["ids"])
        passed = outcome.excinfo is None
        report(item.name, {**figures, "replayed_from_log": seen["replayed"], "passed": passed})
