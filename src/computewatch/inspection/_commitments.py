"""The sample's commit-reveal, in the registry's log (paper §3.2).

Each party logs its commitment ``H(party ‖ nonce)`` as a signed
``sample-commit`` request, and later its nonce as a ``sample-reveal``. The
log orders them, so the audit can check what a commitment computed at
reveal time cannot: that each side committed before it could see the
other's nonce. `check_commit_reveal` reads the period's logged entries and
refuses (`CommitRevealError`, exit status 2) unless

1. the Verifier's first commitment is in the committed checkpoint (logged
   before the period started), and so is the Prover's;
2. each side's first commitment is logged before the other side's reveal;
3. each side's first reveal matches its first commitment (later
   commitments are ignored: a party cannot commit twice and pick).

Example::

    >>> from computewatch.inspection import commit_nonce
    >>> str(commit_nonce("prover", bytes(32)))[:7]
    'sha256:'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.crypto import Digest, Envelope
from computewatch.errors import FormatError, IntegrityError
from computewatch.inspection._sampling import commit_nonce
from computewatch.supplychain import RequestKind, make_request, sign_request

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.crypto import Signer
    from computewatch.supplychain import LoggedCommitment

__all__ = ["CommitRevealError", "Reveals", "check_commit_reveal", "sample_request"]

_PARTY_OF_ROLE = {"verifier": "verifier", "owner": "prover"}


class CommitRevealError(IntegrityError):
    """A commitment or reveal is out of order or does not match: the draw is refused."""

    kind = "commit-reveal refused"
    exit_code = 2


@dataclass(frozen=True)
class Reveals:
    """Both parties' checked commitments and reveals for one Prover's draw.

    Attributes:
        verifier_nonce: The Verifier's revealed nonce.
        verifier_commitment: Its commitment.
        prover_nonce: The Prover's revealed nonce.
        prover_commitment: Its commitment.
        indices: Log index of each (``verifier-commit``, ``prover-commit``,
            ``verifier-reveal``, ``prover-reveal``).
    """

    verifier_nonce: bytes
    verifier_commitment: Digest
    prover_nonce: bytes
    prover_commitment: Digest
    indices: dict[str, int]


def sample_request(
    kind: str,
    *,
    origin: str,
    actor: str,
    key: Signer,
    period: str,
    value: str,
    time_us: int | None = None,
) -> Envelope:
    """A signed ``sample-commit`` (value: the commitment) or ``sample-reveal`` (the nonce hex)."""
    if kind not in {"commit", "reveal"}:
        msg = f"sample request kind: expected commit or reveal, got {kind!r:.40}"
        raise FormatError(msg)
    now = time_us if time_us is not None else time.time_ns() // 1000
    request_kind = RequestKind.SAMPLE_COMMIT if kind == "commit" else RequestKind.SAMPLE_REVEAL
    field = "commitment" if kind == "commit" else "nonce"
    request = make_request(
        request_kind,
        registry=origin,
        actor=actor,
        counter=now,
        time_us=now,
        body={"period": period, field: value},
    )
    return sign_request(request, [key])


def _first(logged: Sequence[LoggedCommitment], actor: str, kind: str) -> LoggedCommitment | None:
    return next((c for c in logged if c.actor == actor and c.kind == kind), None)


def _need(item: LoggedCommitment | None, what: str, period: str) -> LoggedCommitment:
    if item is None:
        msg = f"period {period}: the {what} is not in the registry's log"
        raise CommitRevealError(msg)
    return item


def check_commit_reveal(
    logged: Sequence[LoggedCommitment],
    *,
    period: str,
    verifier: str,
    prover: str,
    committed_size: int,
) -> Reveals:
    """Check the period's logged commitments and reveals (see the module docs).

    Args:
        logged: The period's ``sample-*`` entries, in log order (verified).
        period: The monitoring period.
        verifier: The Verifier's actor id.
        prover: The Prover's actor id.
        committed_size: The size of the checkpoint that started the period.

    Raises:
        CommitRevealError: Missing, late, out-of-order or mismatched.
    """
    items = [c for c in logged if c.period == period]
    for c in items:
        if c.actor in {verifier, prover} and _PARTY_OF_ROLE.get(c.role) is None:
            msg = f"period {period}: log entry {c.index} by {c.actor} of role {c.role!r}"
            raise CommitRevealError(msg)
    v_commit = _need(_first(items, verifier, "commit"), f"Verifier {verifier}'s commitment", period)
    p_commit = _need(_first(items, prover, "commit"), f"Prover {prover}'s commitment", period)
    v_reveal = _need(_first(items, verifier, "reveal"), f"Verifier {verifier}'s reveal", period)
    p_reveal = _need(_first(items, prover, "reveal"), f"Prover {prover}'s reveal", period)
    for who, commit, other, reveal in (
        ("Prover " + prover, p_commit, "Verifier", v_reveal),
        ("Verifier " + verifier, v_commit, "Prover", p_reveal),
    ):
        if commit.index > reveal.index:
            msg = (
                f"period {period}: {who}'s commitment (log index {commit.index}) is logged "
                f"after the {other}'s reveal (log index {reveal.index}); refused"
            )
            raise CommitRevealError(msg)
    for who, commit in (("Verifier " + verifier, v_commit), ("Prover " + prover, p_commit)):
        if commit.index >= committed_size:
            msg = (
                f"period {period}: {who}'s commitment is logged at index {commit.index}, after "
                f"the period's checkpoint (size {committed_size}); expected it before"
            )
            raise CommitRevealError(msg)
    nonces = {}
    for party, commit, reveal in (
        ("verifier", v_commit, v_reveal),
        ("prover", p_commit, p_reveal),
    ):
        nonce = bytes.fromhex(reveal.value)
        if str(commit_nonce(party, nonce)) != commit.value:
            msg = (
                f"period {period}: {reveal.actor}'s reveal (log index {reveal.index}) does not "
                f"match its commitment (log index {commit.index}): expected "
                f"{commit.value[:19]}…, got {str(commit_nonce(party, nonce))[:19]}…"
            )
            raise CommitRevealError(msg)
        nonces[party] = nonce
    return Reveals(
        verifier_nonce=nonces["verifier"],
        verifier_commitment=Digest.parse(v_commit.value),
        prover_nonce=nonces["prover"],
        prover_commitment=Digest.parse(p_commit.value),
        indices={
            "verifier-commit": v_commit.index,
            "prover-commit": p_commit.index,
            "verifier-reveal": v_reveal.index,
            "prover-reveal": p_reveal.index,
        },
    )
