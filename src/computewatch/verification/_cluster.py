"""The trusted cluster (paper §5.2, Appendix D): verify in isolation, sign the verdict.

`cluster_verify` runs `verify_transcript` in this process, which never
imports or executes the Prover's code: the training program runs only in
replay workers, each in the sandbox (`run_isolated`: no network, read-only
inputs, the transcript and the Verifier's files hidden, resource limits;
strict mode refuses to run without every isolation layer), on a local pool
or a Ray cluster. Only tensors and metrics come back from them; this
process compares and decides, adds how the workers were isolated and signs
the verdict as a DSSE envelope of type `VERDICT_PAYLOAD_TYPE`. Malformed or
tampered Prover input gets a signed FAIL naming the file and field; only
faults on the Verifier's side (its chip evidence, its rule file, no
isolation) raise. The verdict
holds pass/fail per check, distances and tolerances, and the fraction of
training compute replayed: no data, weights or hyperparameters.

Example::

    >>> envelope, verdict = cluster_verify(job, key=cluster_key)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path  # noqa: TC003 - dataclass fields are resolved at run time
from typing import TYPE_CHECKING, Any

import numpy as np

from computewatch.crypto import (
    Envelope,
    VerifyingKey,
    canonical_json,
    sign_envelope,
    verify_envelope,
)
from computewatch.errors import FormatError, IntegrityError, ParameterError
from computewatch.verification._audit import folder_challenge
from computewatch.verification._engine import LocalPool, RayPool, WorkerLimits
from computewatch.verification._isolation import Isolation, Layer
from computewatch.verification._results import Verdict
from computewatch.verification._verify import VerificationPolicy

if TYPE_CHECKING:
    from computewatch.crypto import Signer
    from computewatch.verification._engine import Engine
    from computewatch.verification._verify import ChipEvidence

__all__ = ["VERDICT_PAYLOAD_TYPE", "ChipInput", "ClusterJob", "cluster_verify", "read_verdict"]

VERDICT_PAYLOAD_TYPE = "application/vnd.computewatch.verdict+json"


@dataclass(frozen=True)
class ChipInput:
    """An inspected chip: its serial, its registered public key, its log file.

    ``log`` is the ``nvram.log`` of the chip's folder: the cluster asks the
    chip there (opened read-only) for an attestation under a nonce derived
    from the job's secret seed and reads the log only against the entry
    count and head it attests (`verify_attested_log`), so a log cut short,
    emptied or torn is tampering here as in every other reader.
    """

    serial: str
    public_key: Path
    log: Path

    @property
    def folder(self) -> Path:
        """The chip's folder (where its secure element is reached)."""
        return self.log.parent


@dataclass(frozen=True)
class ClusterJob:
    """What the Verifier hands the trusted cluster.

    Attributes:
        transcript: the Prover's transcript folder.
        report: the Prover's report.
        chips: the inspected chips.
        seed: the Verifier's secret seed for segment selection (drawn if None).
        rules: a rule file to evaluate on the verified facts.
        declared: what the Prover declared for the run (``reported``,
            ``approvals``), from the Verifier's records.
        workers: replay workers run at once on this host.
        ray_address: run the replay workers as Ray tasks on this cluster.
        hide: more paths no replay worker may see (the cluster's key, ...).
        limits: bounds on each replay worker (strictness comes from
            `cluster_verify`).
        policy: the whole verification policy the cluster verifies under
            (budget, exactness, replay caps, tolerance, heuristics...); the
            verdict records it.
        answers: the folder where the Prover's answers to step-audit
            challenges lie (``state-<s>.safetensors``; ADR 0037).
    """

    transcript: Path
    report: Path
    chips: tuple[ChipInput, ...] = ()
    seed: int | None = field(default=None, repr=False)
    rules: Path | None = None
    declared: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    ray_address: str | None = None
    hide: tuple[Path, ...] = ()
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    policy: VerificationPolicy = field(default_factory=VerificationPolicy)
    answers: Path | None = None

    def engine(self, *, strict: bool) -> Engine:
        """The replay engine this job asks for."""
        limits = dataclasses.replace(self.limits, strict=strict)
        hide = tuple(str(p.resolve()) for p in (*self.hide, *(c.log for c in self.chips)))
        if self.ray_address is not None:
            return RayPool(self.ray_address, limits=limits, hide=hide, workers=self.workers)
        return LocalPool(workers=self.workers, limits=limits, hide=hide)

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
            "policy": self.policy.to_dict(),
            "seed": self.seed if self.seed is not None else secrets.randbits(63),
            "rules": str(self.rules.resolve()) if self.rules is not None else None,
            "declared": self.declared,
        }

    def inputs(self) -> list[Path]:
        """Everything the child reads."""
        paths = [self.transcript, self.report]
        if self.rules is not None:
            paths.append(self.rules)
        if self.answers is not None:
            paths.append(self.answers)
        for c in self.chips:
            paths += [c.public_key, c.log]
        return [p.resolve() for p in paths]


def cluster_verify(
    job: ClusterJob,
    *,
    key: Signer,
    strict: bool = True,
    timeout: float | None = None,
    compute_cap: float | None = None,
) -> tuple[Envelope, Verdict]:
    """Verify `job` under exactly `job.policy` (Prover code only in sandboxed workers); sign.

    Args:
        job: what to verify, and the policy to verify it under.
        key: the cluster's signing key.
        strict: refuse to run a worker without every isolation layer.
        timeout: wall-clock limit of each replay worker (default: the job's).
        compute_cap: the cluster's own cap on one job's replayed compute
            (fraction of the run's steps, noise twins included); a policy
            with no `max_compute` or a larger one is refused, never
            silently lowered (the verdict states the policy it ran under).

    Raises:
        IsolationUnavailable: strict mode and the sandbox cannot be set up.
        ParameterError: the policy asks for more than `compute_cap`.
        IntegrityError, FormatError: the Verifier's own inputs (chip logs,
            keys, rule file) are tampered or malformed.
    """
    from computewatch.verification._verify import verify_transcript  # noqa: PLC0415

    _within_cap(job.policy, compute_cap)
    if timeout is not None:
        job = dataclasses.replace(job, limits=dataclasses.replace(job.limits, timeout_s=timeout))
    spec = job.to_json()
    chips = [_attested_evidence(c, int(spec["seed"])) for c in job.chips]
    rules = None
    if job.rules is not None:
        from computewatch.rules import load_rules  # noqa: PLC0415

        rules = load_rules(job.rules)
    records: list[dict[str, Any]] = []
    verdict = verify_transcript(
        job.transcript,
        job.report,
        chips,
        job.policy,
        np.random.default_rng(int(spec["seed"])),
        rules=rules,
        declared=dict(job.declared),
        engine=job.engine(strict=strict),
        isolation=records,
        challenge=None if job.answers is None else folder_challenge(job.answers),
    )
    doc = verdict.to_json()
    doc["isolation"] = _weakest(records)
    verdict = Verdict.from_json(doc)
    envelope = sign_envelope(VERDICT_PAYLOAD_TYPE, canonical_json(verdict.to_json()), [key])
    return envelope, verdict


def _attested_evidence(chip: ChipInput, seed: int) -> ChipEvidence:
    """The chip's log, read against the count it attests now under the job's nonce.

    Raises:
        IntegrityError: The attestation does not verify, or the log is cut
            short, emptied, torn or otherwise tampered.
        FormatError: No chip at ``chip.folder``, or a malformed log.
    """
    from computewatch.chip import (  # noqa: PLC0415
        Chip,
        check_attestation,
        read_chip_log,
        verify_attested_log,
    )
    from computewatch.verification._verify import ChipEvidence  # noqa: PLC0415

    key = VerifyingKey.load(chip.public_key)
    material = b"computewatch/cluster-attest/v1\x00%d\x00%s" % (seed, chip.serial.encode())
    nonce = hashlib.sha256(material).digest()[:16]
    with Chip.open(chip.folder, read_only=True) as opened:  # writes nothing, repairs nothing
        claims = check_attestation(opened.attest(nonce), key, chip.serial, nonce)
    envelopes = read_chip_log(chip.log) if chip.log.exists() else []
    return ChipEvidence(
        chip.serial, tuple(verify_attested_log(envelopes, claims, key, chip.serial))
    )


def _within_cap(policy: VerificationPolicy, cap: float | None) -> None:
    """Refuse a policy that asks the cluster for more replay than it allows."""
    if cap is None:
        return
    asked = policy.max_compute
    if asked is None or asked > cap:
        wants = "no cap" if asked is None else f"{asked:g}"
        msg = (
            f"verification policy field 'max_compute': the cluster replays at most {cap:g} "
            f"of a run's training steps, the policy asks for {wants}"
        )
        raise ParameterError(msg)


def _weakest(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The isolation every replay worker had (a layer is on only if on for all)."""
    if not records:
        return Isolation.none("no replay worker ran", "no replay worker ran").to_dict()
    layers = {
        layer.value: all(r.get("layers", {}).get(layer.value) is True for r in records)
        for layer in Layer
    }
    reasons: dict[str, str] = {}
    for r in records:
        reasons.update(r.get("reasons", {}))
    methods = sorted({str(r.get("method")) for r in records})
    return {"layers": layers, "method": ", ".join(methods), "reasons": reasons}


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
