"""``wowevent schemas``: click's runner against real Redis, and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from wowevent_kombu.cli import EXIT_DATAERR, EXIT_ERROR, cli

V1 = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
    "required": ["order_id"],
}


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "order.created"
    folder.mkdir()
    (folder / "1.0.0.json").write_text(json.dumps(V1))
    stricter = {**V1, "required": ["order_id", "amount"]}
    (tmp_path / "strict.json").write_text(
        json.dumps({"type": "order.created", "version": "2.0.0", "schema": stricter})
    )
    return tmp_path


@pytest.fixture
def run(redis_url, exchange):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, ["--broker", redis_url, "--exchange", exchange, *args])

    return invoke


def test_register_list_show(run, files):
    result = run("schemas", "register", str(files / "order.created" / "1.0.0.json"))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "registered order.created 1.0.0"
    assert (
        "already registered"
        in run("schemas", "register", str(files)).output
        + run("schemas", "register", str(files / "order.created" / "1.0.0.json")).output
    )
    listed = json.loads(run("--json", "schemas", "list").output)
    assert listed == [{"type": "order.created", "versions": ["1.0.0"]}]
    shown = json.loads(run("--json", "schemas", "show", "order.created").output)
    assert (shown["version"], shown["schema"], shown["compatibility"]) == ("1.0.0", V1, "backward")


def test_check_names_the_breaking_change_and_writes_nothing(run, files):
    run("schemas", "register", str(files))
    result = run("schemas", "check", "order.created", str(files / "strict.json"))
    assert result.exit_code == EXIT_ERROR
    assert "against 1.0.0 (backward): $.amount: 2.0.0 requires property 'amount'" in result.output
    accepted = run(
        "schemas",
        "check",
        "order.created",
        str(files / "strict.json"),
        "--compatibility",
        "forward",
    )
    assert accepted.exit_code == 0, accepted.output
    assert "accepted under forward" in accepted.output
    assert json.loads(run("--json", "schemas", "list").output)[0]["versions"] == ["1.0.0"]


def test_validate_lists_violations_with_paths(run, files):
    run("schemas", "register", str(files))
    ok = run("schemas", "validate", "order.created", '{"order_id": "o-1", "amount": 2}')
    assert (ok.exit_code, ok.output.strip()) == (0, "valid against order.created 1.0.0")
    bad = run("--json", "schemas", "validate", "order.created", '{"amount": -1}')
    assert bad.exit_code == EXIT_DATAERR
    report = json.loads(bad.output)
    assert [(v["path"], v["keyword"]) for v in report["violations"]] == [
        ("$", "required"),
        ("$.amount", "minimum"),
    ]
    missing = run("schemas", "validate", "order.unknown", "{}")
    assert missing.exit_code == EXIT_DATAERR
    assert "has no registered schema" in missing.output


def test_bad_schema_file_is_a_data_error(run, tmp_path):
    (tmp_path / "order.created").mkdir()
    bad = tmp_path / "order.created" / "1.0.0.json"
    bad.write_text(json.dumps({"type": "thing"}))
    result = run("schemas", "register", str(bad))
    assert result.exit_code == EXIT_DATAERR
    assert "not a valid JSON Schema: at $.type" in result.output


def test_real_subprocess(redis_url, exchange, files):
    command = [sys.executable, "-m", "wowevent_kombu.cli", "--broker", redis_url,
               "--exchange", exchange, "schemas", "register", str(files)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "registered order.created 1.0.0"
