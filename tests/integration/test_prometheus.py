"""A real Prometheus server scrapes ``wowevent serve`` and a prefork worker; PromQL agrees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, Worker, wait_for
from tests.integration.serving import free_port, serving
from tests.integration.test_observability import metrics_port

pytestmark = pytest.mark.integration

ALERTS = ROOT / "compose" / "prometheus" / "alerts.yml"
TOKEN = "s3cret-token-for-prometheus"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; scripts/ensure-prometheus.sh installs it (root)")
    pytest.skip(f"{name} is not installed: run scripts/ensure-prometheus.sh as root to install it")


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as reply:
        doc = json.loads(reply.read())
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def scalar(base: str, promql: str) -> float | None:
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


def post(url: str, doc: object, token: str) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(doc).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as reply:
        return int(reply.status)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_prometheus_scrapes_service_and_worker_and_promql_sees_the_workload(
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    redis_url: str,
    exchange: str,
    tmp_path: Path,
) -> None:
    prometheus = tool("prometheus")
    promtool = tool("promtool")
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "WOWEVENT_METRICS_PORT": "0"}
    start_worker("tests.apps.observed", env=env, pool="prefork", concurrency=2)
    worker_port = metrics_port(redis_client, exchange)
    with serving(redis_url, exchange, tmp_path / "serve.log", WOWEVENT_ADMIN_TOKEN=TOKEN) as (
        _,
        service,
    ):
        # promtool lints both expositions before Prometheus scrapes them.
        for url in (f"{service}/metrics", f"http://127.0.0.1:{worker_port}/metrics"):
            post(f"{service}/admin/publish", {"type": "obs.ok", "data": {}}, TOKEN)
            text = fetch(url)
            lint = subprocess.run(
                [promtool, "check", "metrics"], input=text, capture_output=True, text=True
            )
            assert lint.returncode == 0, f"{url}: {lint.stdout}{lint.stderr}"

        port = free_port()
        config = tmp_path / "prometheus.yml"
        shutil.copy(ALERTS, tmp_path / "alerts.yml")
        service_target = service.removeprefix("http://")
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            f"  - job_name: service\n    static_configs: [{{targets: ['{service_target}']}}]\n"
            f"  - job_name: worker\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _ready(base, proc), 30, 0.1, "Prometheus to be ready")
            for _ in range(8):
                post(f"{service}/admin/publish", {"type": "obs.ok", "data": {}}, TOKEN)
            for _ in range(3):
                post(
                    f"{service}/admin/publish",
                    {"type": "obs.flaky", "data": {"fail_times": 1}},
                    TOKEN,
                )
            post(f"{service}/admin/publish", {"type": "nobody.listens", "data": {}}, TOKEN)
            sel = f'exchange="{exchange}"'
            done = f"wowevent_deliveries_total{{{sel}"
            expected = {
                f'sum(wowevent_events_published_total{{{sel},type="obs.ok"}})': 10.0,
                f'sum(wowevent_events_published_total{{{sel},type="obs.flaky"}})': 3.0,
                f"sum(wowevent_events_unroutable_total{{{sel}}})": 1.0,
                f'sum({done},subscriber="ok",outcome="succeeded"}})': 10.0,
                f'sum({done},subscriber="flaky",outcome="retried"}})': 3.0,
                f'sum({done},subscriber="flaky",outcome="succeeded"}})': 3.0,
                f'sum(wowevent_end_to_end_latency_seconds_count{{{sel},subscriber="ok"}})': 10.0,
                f"wowevent_bound_subscribers{{{sel}}}": 5.0,
                f'wowevent_subscriber_consumers{{{sel},subscriber="ok"}}': 1.0,
                f'wowevent_queue_waiting_events{{{sel},subscriber="ok"}}': 0.0,
                f'wowevent_subscriber_health{{{sel},subscriber="ok",state="healthy"}}': 1.0,
                f"wowevent_log_events{{{sel}}}": 14.0,
                'sum(up{job=~"service|worker"})': 2.0,
            }

            def agreed() -> bool:
                return all(scalar(base, q) == v for q, v in expected.items())

            try:
                wait_for(agreed, 30, 0.5, "PromQL to return the workload's figures")
            except AssertionError:
                got = {q: scalar(base, q) for q in expected}
                raise AssertionError(f"PromQL results differ: {got}") from None
            p99 = scalar(
                base,
                "histogram_quantile(0.99, sum by (le) ("
                f'wowevent_end_to_end_latency_seconds_bucket{{{sel},subscriber="ok"}}))',
            )
            assert p99 is not None
            assert 0 < p99 <= 60
            rules = fetch(f"{base}/api/v1/rules")
            assert "WoweventSubscriberUnhealthy" in rules
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()


def _ready(base: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"prometheus exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
