"""The commit-reveal order and match, checked on the registry log's entries."""

from __future__ import annotations

import pytest

from computewatch.inspection import CommitRevealError, Reveals, check_commit_reveal, commit_nonce
from computewatch.supplychain import LoggedCommitment

V, P = bytes([1]) * 32, bytes([2]) * 32


def _c(index: int, kind: str, actor: str, value: str) -> LoggedCommitment:
    role = "verifier" if actor == "reg" else "owner"
    return LoggedCommitment(index, kind, actor, role, "p1", value)


def _honest() -> list[LoggedCommitment]:
    return [
        _c(10, "commit", "reg", str(commit_nonce("verifier", V))),
        _c(11, "commit", "lab", str(commit_nonce("prover", P))),
        _c(20, "reveal", "reg", V.hex()),
        _c(21, "reveal", "lab", P.hex()),
    ]


def _check(logged: list[LoggedCommitment], size: int = 12) -> Reveals:
    return check_commit_reveal(
        logged, period="p1", verifier="reg", prover="lab", committed_size=size
    )


def test_an_honest_exchange_gives_both_nonces() -> None:
    got = _check(_honest())
    assert got.verifier_nonce == V
    assert got.prover_nonce == P
    assert got.indices == {
        "verifier-commit": 10, "prover-commit": 11, "verifier-reveal": 20, "prover-reveal": 21,
    }  # fmt: skip


def test_a_second_commitment_cannot_replace_the_first() -> None:
    other = bytes([3]) * 32
    logged = _honest()
    logged.insert(2, _c(12, "commit", "lab", str(commit_nonce("prover", other))))
    logged[-1] = _c(21, "reveal", "lab", other.hex())  # reveals the nonce of its 2nd commitment
    with pytest.raises(CommitRevealError, match="does not match its commitment"):
        _check(logged, size=13)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda log: [log[0], log[2], _c(30, "commit", "lab", log[1].value), log[3]],
         "after the Verifier's reveal"),
        (lambda log: [log[1], log[3], _c(30, "commit", "reg", log[0].value), log[2]],
         "after the Prover's reveal"),
        (lambda log: log[1:], "Verifier reg's commitment is not in"),
        (lambda log: log[:3], "Prover lab's reveal is not in"),
    ],
)  # fmt: skip
def test_late_or_missing_entries_are_refused(edit: object, match: str) -> None:
    with pytest.raises(CommitRevealError, match=match) as e:
        _check(edit(_honest()))  # type: ignore[operator]
    assert e.value.exit_code == 2


def test_a_commitment_after_the_periods_checkpoint_is_refused() -> None:
    with pytest.raises(CommitRevealError, match="after the period's checkpoint"):
        _check(_honest(), size=11)  # the Prover's commitment (index 11) is not in it
