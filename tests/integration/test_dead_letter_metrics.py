"""One handler fails for good on a real worker: every operator view counts its dead letter.

``/metrics``, ``/status`` and ``wowevent status`` read the count from the dead-letter store, and
the shipped ``WoweventDeadLettersGrowing`` rule fires on the very samples ``/metrics`` served
(checked with ``promtool test rules``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, Worker, wait_for
from tests.integration.serving import serving
from tests.integration.test_observability import publisher, samples
from tests.integration.test_prometheus import ALERTS, fetch, tool

pytestmark = pytest.mark.integration

RULE_TEST = """\
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'wowevent_dlq_events{{exchange="{exchange}",subscriber="doomed"}}'
        values: '{before}x4 {after}x9 {before}x4'
      - series: 'wowevent_dlq_events{{exchange="{exchange}",subscriber="ok"}}'
        values: '{ok}x19'
    alert_rule_test:
      - eval_time: 3m
        alertname: WoweventDeadLettersGrowing
        exp_alerts: []
      - eval_time: 10m
        alertname: WoweventDeadLettersGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, exchange: "{exchange}", subscriber: doomed}}
            exp_annotations:
              summary: "Dead-letter queue of doomed grew by {growth} in 15 minutes"
      - eval_time: 17m
        alertname: WoweventDeadLettersGrowing
        exp_alerts: []
"""


def dlq_sample(url: str, exchange: str, subscriber: str) -> float | None:
    """``wowevent_dlq_events`` of one subscriber as ``url`` serves it (``None``: no sample)."""
    key = ("wowevent_dlq_events", (("exchange", exchange), ("subscriber", subscriber)))
    return samples(url).get(key)


def test_one_dead_letter_shows_everywhere_and_fires_the_alert(
    start_worker: Callable[..., Worker], redis_url: str, exchange: str, tmp_path: Path
) -> None:
    start_worker("tests.apps.observed")
    with serving(redis_url, exchange, tmp_path / "serve.log") as (_, service):
        before = dlq_sample(f"{service}/metrics", exchange, "doomed")
        assert before == 0.0  # a sample for every bound subscriber, 0 included
        bus = publisher(redis_url, exchange)
        bus.publish("obs.doomed", {})
        bus.close()
        wait_for(
            lambda: dlq_sample(f"{service}/metrics", exchange, "doomed"),
            30, 0.1, "the dead letter in /metrics",
        )  # fmt: skip
        after = dlq_sample(f"{service}/metrics", exchange, "doomed")
        ok = dlq_sample(f"{service}/metrics", exchange, "ok")
        assert (after, ok) == (1.0, 0.0)
        status = json.loads(fetch(f"{service}/status"))
        sizes = {s["subscriber"]: s["dlq_size"] for s in status["subscribers"]}
        assert (sizes["doomed"], sizes["ok"]) == (1, 0)

    cli = subprocess.run(
        [sys.executable, "-m", "wowevent_kombu.cli", "--broker", redis_url,
         "--exchange", exchange, "--json", "status"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    rows = {s["subscriber"]: s["dlq_size"] for s in json.loads(cli.stdout)["subscribers"]}
    assert (rows["doomed"], rows["ok"]) == (1, 0)

    # The rule, fed the samples /metrics served before and after the failure (and the count
    # falling back, as a purge makes it: that must not fire).
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "test.yml").write_text(
        RULE_TEST.format(
            exchange=exchange, before=before, after=after, ok=ok, growth=f"{after - before:g}"
        )
    )
    done = subprocess.run(
        [tool("promtool"), "test", "rules", "test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
