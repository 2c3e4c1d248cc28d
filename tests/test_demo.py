"""`make demo` works end to end, and explains itself when no Redis exists at all."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_demo_runs_a_real_worker(redis_url):
    env = {**os.environ, "WOWEVENT_BROKER_URL": redis_url}
    out = subprocess.run([sys.executable, "examples/demo.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=90)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mail server down, retrying" in out.stdout
    assert "5 events published, 10 handler runs, 1 unroutable" in out.stdout
    assert "ledger  exhausted  order.paid  2 attempts" in out.stdout
    assert "posted to the ledger" in out.stdout
    assert "Re-drove 1 dead letter as a fresh task; 0 left in the store." in out.stdout
    assert "charged (replayed)" in out.stdout
    status = out.stdout.split("status\n", 1)[1]
    assert "SUBSCRIBER" in status
    assert "mailer" in status
    assert "Traceback" not in out.stdout + out.stderr


def test_demo_without_redis_explains_and_runs_in_process(capsys):
    sys.path.insert(0, str(ROOT))
    from examples.demo import in_process_demo

    assert in_process_demo() == 0
    text = capsys.readouterr().out
    assert "apt-get install redis-server" in text
    assert "payment.settled      -> mailer" in text
