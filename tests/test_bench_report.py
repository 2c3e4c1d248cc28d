"""The benchmark report: every step's output, status and JSON collected, failures kept and told."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report
from benchmarks.report import Step

TABLE = "print('progress'); print('| a | 1 |'); print(); print('| k | v |'); print('|---|---|'); print('| a | 1 |')"  # noqa: E501
WRITES = "import pathlib, sys; pathlib.Path(sys.argv[1], 'x.json').write_text('{\"rate\": 5}')"


def test_collects_tables_text_json_and_failures(tmp_path: Path) -> None:
    steps = [
        Step("tabled", ("-c", TABLE)),
        Step("plain", ("-c", WRITES + "; print('rate 5/s')", "{out}"), "x.json"),
        Step("broken", ("-c", "import sys; print('half'); sys.exit('no Redis answers')")),
    ]
    results = report.collect(steps, tmp_path)

    assert [r["exit_status"] for r in results.values()] == [0, 0, 1]
    assert results["plain"]["results"] == {"rate": 5}
    assert "no Redis answers" in results["broken"]["error"]
    assert json.loads((tmp_path / "report.json").read_text()) == results
    text = (tmp_path / "report.md").read_text()
    tabled = text[text.index("## tabled") : text.index("## plain")].split("\n\n", 2)[2]
    assert tabled == "| k | v |\n|---|---|\n| a | 1 |\n\n"  # the final table only
    assert "```\nrate 5/s\n```" in text
    assert "FAILED (exit 1)" in text and "no Redis answers" in text


def test_main_exits_non_zero_when_a_benchmark_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "STEPS", (Step("ok", ("-c", "pass")), Step("bad", ("-c", "1/0"))))
    assert report.main(["--out", str(tmp_path)]) == 1
    assert report.main(["--out", str(tmp_path), "--only", "ok"]) == 0
    assert list(json.loads((tmp_path / "report.json").read_text())) == ["ok"]
