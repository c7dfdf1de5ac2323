"""The verification policy as a file: every field round-trips, anything malformed is refused."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main
from computewatch.errors import FormatError, ParameterError
from computewatch.verification import HEURISTICS, VerificationPolicy

if TYPE_CHECKING:
    from pathlib import Path


def test_every_field_round_trips_through_a_dict() -> None:
    policy = VerificationPolicy(
        budget=0.3,
        pol_segments=4,
        safety=2.5,
        exact=True,
        chip_flops_per_second=2e14,
        clock_slack_s=1.0,
        max_forward_checks=5,
        max_replayed_snapshots=1,
        heuristics=(HEURISTICS["loss_trend"], HEURISTICS["data_in_committed_set"]),
        max_compute=0.4,
    )
    doc = json.loads(json.dumps(policy.to_dict()))
    assert doc["heuristics"] == ["loss_trend", "data_in_committed_set"]
    again = VerificationPolicy.from_dict(doc)
    assert again == policy
    assert again.to_dict() == doc
    assert VerificationPolicy.from_dict({}) == VerificationPolicy()


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([1, 2], "expected a mapping"),
        ({"budget": 1.5}, "field 'budget'"),
        ({"budget": "0.1"}, "field 'budget': expected a number"),
        ({"pol_segments": 2.5}, "field 'pol_segments': expected an integer"),
        ({"pol_segments": True}, "field 'pol_segments'"),
        ({"max_replayed_snapshots": 10**9}, "field 'max_replayed_snapshots'"),
        ({"safety": 0}, "field 'safety'"),
        ({"safety": float("nan")}, "field 'safety'"),
        ({"max_compute": 3.0}, "field 'max_compute'"),
        ({"exact": "yes"}, "field 'exact'"),
        ({"heuristics": ["os.system"]}, "unknown heuristic 'os.system'"),
        ({"heuristics": ["loss_trend", "loss_trend"]}, "listed twice"),
        ({"heuristics": "loss_trend"}, "field 'heuristics'"),
        ({"seed": 3}, "field 'seed': unknown"),
    ],
)
def test_a_malformed_policy_is_one_line_naming_the_field(doc: object, field: str) -> None:
    with pytest.raises(FormatError, match=field) as e:
        VerificationPolicy.from_dict(doc, where="plan.json verification.policy")
    assert e.value.message.startswith("plan.json verification.policy")
    assert "\n" not in e.value.message


def test_the_constructor_holds_the_same_bounds() -> None:
    with pytest.raises(ParameterError, match="field 'pol_segments'"):
        VerificationPolicy(pol_segments=-1)
    with pytest.raises(ParameterError, match="field 'budget'"):
        VerificationPolicy(budget=2.0)


def test_cluster_verify_refuses_a_malformed_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"safety": -1}')
    (tmp_path / "r.json").write_text("{}")
    assert main(["keys", "generate", str(tmp_path / "k")]) == 0
    capsys.readouterr()
    argv = ["cluster", "verify", "--transcript", str(tmp_path),
            "--report", str(tmp_path / "r.json"), "--key", str(tmp_path / "k"),
            "--out", str(tmp_path / "v.json"), "--policy", str(policy)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "field 'safety'" in err
    assert str(policy) in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "v.json").exists()
