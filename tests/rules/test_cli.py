"""`computewatch rules check` and `computewatch rules eval`, end to end."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main
from tests.rules.facts import EXAMPLE_RULES, demo_facts, estimate

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.rules import Facts


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_facts(tmp_path: Path, facts: Facts) -> str:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts.to_dict()), encoding="utf-8")
    return str(path)


def test_check_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "rules", "check", str(EXAMPLE_RULES))
    assert code == 0, err
    assert out.strip() == (
        f"{EXAMPLE_RULES}: ok, 'computewatch demo regime': 5 rules "
        "(1 reporting, 1 ban, 1 approval, 2 mitigation)"
    )


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "check", str(EXAMPLE_RULES), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["name"] == "computewatch demo regime"
    assert doc["rules"][1] == {
        "id": "no-exploit-code",
        "kind": "ban",
        "description": doc["rules"][1]["description"],
        "when": "data.exploit_code.upper > 0.05",
    }


def test_check_bad_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nname: t\nrules:\n  - {id: no-exploit-code, kind: ban, "
        "when: 'data.exploit_code.upper >> 0.01'}\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "rules", "check", str(path))
    assert code == 2
    assert out == ""
    assert err == (
        f"bad input: {path} rule 'no-exploit-code' field 'when': "
        "CEL syntax error at column 26: unexpected '>'\n"
    )


def test_check_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rules", "check", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml': no such file" in err


def test_eval_compliant_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    facts = write_facts(tmp_path, demo_facts())
    code, out, err = run(capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", facts)
    assert code == 0, err
    assert "capable-models-need-eval" in out
    assert "run run-a: compliant (0 violations, 0 errors)" in out


def test_eval_violation_exits_1_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaking = demo_facts(
        flops=2e11, data={"exploit_code": estimate(0.4, flagged=60)}, run_id="run-b"
    )
    facts = write_facts(tmp_path, breaking)
    code, out, _ = run(capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", facts, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["compliant"] is False
    assert doc["run"] == "run-b"
    failing = {r["rule"] for r in doc["results"] if r["status"] == "violation"}
    assert failing == {"report-large-runs", "no-exploit-code", "approval-for-frontier"}


def test_eval_human_output_of_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = write_facts(tmp_path, demo_facts(benchmarks={}))
    code, out, _ = run(capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", facts)
    assert code == 1
    assert "capable-models-need-eval" in out
    assert "missing fact" in out
    assert "run run-a: NOT compliant (0 violations, 1 errors)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "facts.json: expected JSON facts, got invalid JSON"),
        (
            (
                '{"run": {"id": "r", "chips": 1, "steps": 1}, "training": {"flops": NaN, '
                '"chip_hours": 0}}'
            ),
            "facts.json: expected finite JSON numbers, got NaN",
        ),
        ('{"run": {"id": "r", "chips": 1, "steps": 1}}', "facts.json: missing key 'training'"),
        (
            (
                '{"run": {"id": "r", "chips": "4", "steps": 1}, '
                '"training": {"flops": 1, "chip_hours": 0}}'
            ),
            "facts.json field 'run.chips': expected an integer in",
        ),
    ],
)
def test_eval_bad_facts_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", str(path))
    assert code == 2
    assert out == ""
    assert err.startswith("bad input: ")
    assert message in err
    assert err.count("\n") == 1


def test_eval_missing_or_huge_facts_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", str(tmp_path / "none.json")
    )
    assert code == 2
    assert "'--facts'" in err
    assert "none.json': no such file" in err
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * ((1 << 20) + 1))
    code, _, err = run(capsys, "rules", "eval", str(EXAMPLE_RULES), "--facts", str(huge))
    assert code == 2
    assert f"expected at most {1 << 20} bytes, got {(1 << 20) + 1}" in err


def test_eval_needs_facts(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rules", "eval", str(EXAMPLE_RULES))
    assert code == 2
    assert "--facts" in err
