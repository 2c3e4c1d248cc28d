"""Pytest plugin: print events in / handled / duplicates / lost for ``test_faults.py``.

``test_faults.py`` counts inside each test; this plugin watches the two helpers it counts with
(``all_handled`` gets the ids that must be handled, ``runs`` reads the executions) and reports
their last values once the test has run. Load it with ``-p tests.reliability.faultcounts -s``;
lines start with ``RELIABILITY`` and are also appended to ``$WOWEVENT_RELIABILITY_REPORT``.
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
    seen: dict[str, Any] = {}
    original_runs, original_all_handled = module.runs, module.all_handled

    def runs(client: Any, exchange: str) -> Any:
        seen["counts"] = original_runs(client, exchange)
        return seen["counts"]

    def all_handled(client: Any, exchange: str, ids: list[str]) -> bool:
        seen["ids"] = list(ids)
        return bool(original_all_handled(client, exchange, ids))

    module.runs, module.all_handled = runs, all_handled
    try:
        outcome = yield
    finally:
        module.runs, module.all_handled = original_runs, original_all_handled
    if "ids" in seen and "counts" in seen:
        figures = tally(seen["counts"], module.SUBSCRIBERS, seen["ids"])
        passed = outcome.excinfo is None
        report(item.name, {**figures, "passed": passed})
