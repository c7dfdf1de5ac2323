"""The trusted cluster (paper §5.2, Appendix D): verify in isolation, sign the verdict.

`cluster_verify` runs `verify_transcript` in a child process inside the
sandbox (`run_isolated`: no network, read-only inputs, nothing persistent
written; strict mode refuses to run without every isolation layer). The
child prints the verdict as JSON; the cluster host adds how it was isolated
and signs it as a DSSE envelope of type `VERDICT_PAYLOAD_TYPE`. The verdict
holds pass/fail per check, distances and tolerances, and the fraction of
training compute replayed: no data, weights or hyperparameters.

Example::

    >>> envelope, verdict = cluster_verify(job, key=cluster_key)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path  # noqa: TC003 - dataclass fields are resolved at run time
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Envelope, canonical_json, sign_envelope, verify_envelope
from computewatch.errors import FormatError, IntegrityError
from computewatch.verification._results import Verdict
from computewatch.verification._sandbox import run_isolated

if TYPE_CHECKING:
    from computewatch.crypto import Signer, VerifyingKey

__all__ = ["VERDICT_PAYLOAD_TYPE", "ChipInput", "ClusterJob", "cluster_verify", "read_verdict"]

VERDICT_PAYLOAD_TYPE = "application/vnd.computewatch.verdict+json"


@dataclass(frozen=True)
class ChipInput:
    """An inspected chip: its serial, its registered public key, its log file."""

    serial: str
    public_key: Path
    log: Path


@dataclass(frozen=True)
class ClusterJob:
    """What the Verifier hands the trusted cluster.

    Attributes:
        transcript: the Prover's transcript folder.
        report: the Prover's report.
        chips: the inspected chips.
        budget: segment replay budget (fraction of training steps).
        exact: require bitwise replays where possible.
        max_compute: cap on everything replayed, noise twins included
            (fraction of training steps); None for no cap.
        seed: the Verifier's secret seed for segment selection (drawn if None).
        rules: a rule file to evaluate on the verified facts.
        declared: what the Prover declared for the run (``reported``,
            ``approvals``), from the Verifier's records.
    """

    transcript: Path
    report: Path
    chips: tuple[ChipInput, ...] = ()
    budget: float = 0.05
    exact: bool = False
    max_compute: float | None = None
    seed: int | None = field(default=None, repr=False)
    rules: Path | None = None
    declared: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The job as the child reads it."""
        return {
            "transcript": str(self.transcript.resolve()),
            "report": str(self.report.resolve()),
            "chips": [
                {
                    "serial": c.serial,
                    "public_key": str(c.public_key.resolve()),
                    "log": str(c.log.resolve()),
                }
                for c in self.chips
            ],
            "budget": self.budget,
            "exact": self.exact,
            "max_compute": self.max_compute,
            "seed": self.seed if self.seed is not None else secrets.randbits(63),
            "rules": str(self.rules.resolve()) if self.rules is not None else None,
            "declared": self.declared,
        }

    def inputs(self) -> list[Path]:
        """Everything the child reads."""
        paths = [self.transcript, self.report]
        if self.rules is not None:
            paths.append(self.rules)
        for c in self.chips:
            paths += [c.public_key, c.log]
        return [p.resolve() for p in paths]


def cluster_verify(
    job: ClusterJob,
    *,
    key: Signer,
    strict: bool = True,
    timeout: float = 3600.0,
) -> tuple[Envelope, Verdict]:
    """Verify `job` in the sandbox and return the signed verdict.

    Raises:
        IsolationUnavailable: strict mode and the sandbox cannot be set up.
        SandboxFailed: the verification process failed (one-line reason).
    """
    spec = json.dumps(job.to_json())
    out, isolation = run_isolated(
        [sys.executable, "-m", "computewatch.verification._cluster_child", spec],
        inputs=job.inputs(),
        strict=strict,
        timeout=timeout,
    )
    try:
        doc = json.loads(out)
    except ValueError as e:
        msg = f"trusted cluster: the verification process printed no verdict ({e})"
        raise FormatError(msg) from e
    doc["isolation"] = isolation.to_dict()
    verdict = Verdict.from_json(doc)
    envelope = sign_envelope(VERDICT_PAYLOAD_TYPE, canonical_json(verdict.to_json()), [key])
    return envelope, verdict


def read_verdict(envelope: Envelope | bytes | str, cluster_key: VerifyingKey) -> Verdict:
    """Verify a signed verdict against the trusted cluster's key and parse it.

    Raises:
        IntegrityError: not signed by the cluster (or tampered).
    """
    verified = verify_envelope(
        envelope, {cluster_key.key_id: cluster_key}, payload_type=VERDICT_PAYLOAD_TYPE
    )
    try:
        return Verdict.from_json(json.loads(verified.payload))
    except (ValueError, KeyError, TypeError) as e:  # pragma: no cover - signed by us
        msg = f"verdict: signed payload is malformed ({e})"
        raise IntegrityError(msg) from e


def write_verdict(path: Path, envelope: Envelope) -> None:
    """Write the signed verdict (the only file the cluster writes)."""
    try:
        path.write_bytes(envelope.to_json() + b"\n")
    except OSError as e:
        msg = f"verdict {path}: cannot write ({e.strerror})"
        raise FormatError(msg) from e
