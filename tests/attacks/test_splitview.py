"""The log operator's split view and rollback are caught in every trial; the honest log never is."""

from __future__ import annotations

from computewatch.attacks import LogRollback, SplitView, attack_names, run_benchmark


def test_split_view_and_rollback_are_in_the_corpus() -> None:
    assert {SplitView.name, LogRollback.name} <= set(attack_names())


def test_caught_in_every_trial_under_two_of_three() -> None:
    results = run_benchmark(trials=24, only=[SplitView.name, LogRollback.name])
    rows = {r["name"]: r for r in results["attacks"]}
    for name, expected in ((SplitView.name, "QuorumNotMet"), (LogRollback.name, "RollbackError")):
        row = rows[name]
        assert row["detection"]["count"] == 24, row["missed"]
        assert row["caught_by_expected"] == 24
        assert expected in row["checks"]
        assert row["data"]["honest_refused"]["max"] == 0.0  # the honest log is never refused
    variants = rows[SplitView.name]["data"]["variant"]
    assert (variants["min"], variants["max"]) == (0.0, 2.0)  # same size, larger, smaller forks
    # the inspector is an audit under the plan's policy: it refuses the fork whenever the
    # fork lacks a quorum (else the fork's quorum leaves the real log without one)
    at_inspection = rows[SplitView.name]["data"]["inspection_refused"]
    assert 0.0 < at_inspection["mean"] < 1.0
    assert at_inspection["max"] == 1.0
