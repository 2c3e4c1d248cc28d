"""schemathesis against ``/openapi.json`` of a live ``wowevent serve``: no 5xx, no answer that
breaks the document, no undocumented status, no schema-violating request accepted.

The ``positive_data_acceptance`` check is left out on purpose: the API refuses some requests
that JSON Schema cannot describe as wrong (record ids together with a filter, a ``since``
after ``until``, a subscriber that is not bound, a replay of a run that does not exist), and
each such refusal is a 4xx naming the problem, which the other checks verify.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.conftest import ROOT
from tests.integration.serving import app_env, serving
from tests.web.live import ADMIN
from wowevent_kombu.core import names

EXAMPLES = os.environ.get("WOWEVENT_FUZZ_EXAMPLES", "5")


def test_schemathesis_finds_nothing(redis_url: str, exchange: str, tmp_path: Path) -> None:
    env = app_env(redis_url, exchange)
    wowevent = [sys.executable, "-c", "from wowevent_kombu.cli import main; main()",
                "-A", "tests.apps.observed:app"]  # fmt: skip
    # Bound subscribers, a logged event and a dead letter, so routes answer with real data.
    subprocess.run([*wowevent, "declare"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*wowevent, "publish", "obs.ok", '{"n": 1}'], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    with serving(redis_url, exchange, tmp_path / "serve.log", WOWEVENT_ADMIN_TOKEN=ADMIN) as (
        _,
        base,
    ):
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/openapi.json",
             "-H", f"Authorization: Bearer {ADMIN}", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", EXAMPLES,
             "--phases", "examples,coverage,fuzzing", "--seed", "20261203",
             "--request-timeout", "20", "--warnings", "off"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    summary = run.stdout[-4000:]
    print(summary)
    assert run.returncode == 0, summary
    assert "passed" in summary and "failures" not in summary.lower().split("summary")[-1]
    # The fuzzing went through the admin routes, and nothing broke the store's indexes.
    client = redis.Redis.from_url(redis_url)
    assert client.exists(names.log_key(exchange))
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
