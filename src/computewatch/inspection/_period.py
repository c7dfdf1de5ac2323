"""The audit's first steps, against a live registry: plan, commit, reveal, sample.

Each function reads and writes the audit folder (`AuditFolder`) and talks to
the registry through a `RegistryClient` whose log key is the trust root. If
the plan names a tlog-policy (`AuditTrust`), the client must accept
checkpoints under it and with the folder's state (`audit_registry`): each
checkpoint then needs the policy's witness quorum and must extend the newest
one an earlier step accepted.

* `plan_audit`: each Prover's chip count at the registry's current
  checkpoint and Equation 1 (`plan_samples`) give the sample sizes;
* `commit`: a party logs ``H(party ‖ nonce)`` (the Verifier before the
  period; each Prover too);
* `start`: the Verifier records the checkpoint that starts the period
  (after the commitments; the sample is drawn from the holdings in it);
* `reveal`: after the period, each party logs its nonce;
* `sample`: the period's commitments and reveals are read from the log (each
  item proved against a fresh checkpoint consistent with the committed one)
  and checked for order and match (`check_commit_reveal`); the Prover's
  chips are its holdings at the committed checkpoint, from the server's
  proved answer and, independently, a replay of the checkpoint's entries
  (they must agree); then `draw_sample`.

Example::

    >>> plan_audit(folder, client, period="2026-11", verifier="reg-1",
    ...            provers=["lab-a"], params=params)  # doctest: +SKIP
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from computewatch.analysis import SamplingParams, plan_samples
from computewatch.crypto import VerifyingKey
from computewatch.errors import FormatError, IntegrityError
from computewatch.inspection._checkpoints import AuditTrust
from computewatch.inspection._commitments import check_commit_reveal, sample_request
from computewatch.inspection._folder import AuditFolder, read_json, write_bytes, write_json
from computewatch.inspection._sampling import commit_nonce, draw_sample
from computewatch.rules import load_rules
from computewatch.supplychain import AuditQueries
from computewatch.verification import VerificationPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from computewatch.crypto import Checkpoint, Signer, WitnessedCheckpoint
    from computewatch.supplychain import RegistryClient

__all__ = [
    "commit",
    "committed_checkpoint",
    "load_plan",
    "plan_audit",
    "plan_policy",
    "reveal",
    "sample",
    "start",
]

PLAN_FORMAT = "computewatch-audit-plan/v1"
_PLAN_FIELDS: dict[str, type] = {
    "period": str,
    "verifier": str,
    "provers": dict,
    "registry": dict,
    "params": dict,
    "verification": dict,
}


def load_plan(folder: AuditFolder) -> dict[str, Any]:
    """Read and check ``plan.json``."""
    plan = read_json(folder.plan, "audit plan")
    if plan.get("format") != PLAN_FORMAT:
        got = plan.get("format")
        msg = f"audit plan {folder.plan}: expected format {PLAN_FORMAT}, got {got!r:.40}"
        raise FormatError(msg)
    for key, kind in _PLAN_FIELDS.items():
        if not isinstance(plan.get(key), kind):
            msg = f"audit plan {folder.plan} field {key!r}: missing or not a {kind.__name__}"
            raise FormatError(msg)
    return plan


def plan_policy(folder: AuditFolder, plan: dict[str, Any]) -> VerificationPolicy:
    """The verification policy ``plan.json`` holds (`FormatError` naming the field)."""
    section = plan.get("verification")
    doc = section.get("policy") if isinstance(section, dict) else None
    return VerificationPolicy.from_dict(doc, where=f"audit plan {folder.plan} verification.policy")


def plan_audit(
    folder: AuditFolder,
    client: RegistryClient,
    *,
    period: str,
    verifier: str,
    provers: Sequence[str],
    params: SamplingParams,
    server: str,
    rules: Path | None = None,
    policy: VerificationPolicy | None = None,
    trust: AuditTrust | None = None,
) -> dict[str, Any]:
    """Write ``plan.json``: each Prover's sample size for its chips in the registry now.

    `policy` (default `VerificationPolicy()`) is written whole; the
    ``verify`` step hands exactly it to the trusted cluster. With ``trust``
    naming a tlog-policy, the plan keeps the policy file's path and SHA-256,
    and every later step accepts checkpoints only under it.
    """
    policy = policy or VerificationPolicy()
    VerificationPolicy.from_dict(policy.to_dict(), where="audit plan policy")  # file-able
    if rules is not None:
        load_rules(rules)  # a bad rule file or resource is refused before the period
    if not provers:
        msg = "audit plan: expected at least one Prover"
        raise FormatError(msg)
    if trust is not None and trust.policy is not None:
        trust.check_client(client, "audit plan")
    checkpoint = client.checkpoint()
    info = client.info()
    queries = AuditQueries(client)
    per_prover = {}
    for prover in sorted(set(provers)):
        chips = len(queries.holdings(prover, checkpoint))
        if chips == 0:
            msg = f"audit plan: the registry lists no chips held by {prover!r}"
            raise FormatError(msg)
        result = plan_samples(replace(params, chips=chips))
        per_prover[prover] = {
            "chips": chips,
            "sample_size": min(chips, result.samples_per_period),
            "run_fraction": result.run_fraction,
            "snapshot_probability": result.snapshot_probability,
            "samples_per_period_exact": result.samples_per_period_exact,
        }
    plan = {
        "format": PLAN_FORMAT,
        "period": period,
        "registry": {
            "server": server,
            "origin": client.origin,
            "log_key": client.trusted[0].vkey,
            "registrar_id": str(info["registrar_id"]),
            "registrar_key": str(info["registrar_key"]),
            "planned_at_size": checkpoint.size,
            "checkpoint_policy": trust.to_plan() if trust is not None else None,
        },
        "verifier": verifier,
        "params": params.to_dict(),
        "provers": per_prover,
        "verification": {
            "rules": str(rules) if rules is not None else None,
            "policy": policy.to_dict(),
        },
    }
    write_json(folder.plan, plan)
    return plan


def commit(
    folder: AuditFolder,
    client: RegistryClient,
    *,
    actor: str,
    key: Signer,
    nonce: bytes | None = None,
    nonce_file: Path | None = None,
) -> dict[str, Any]:
    """Log ``actor``'s commitment for the plan's period; keep the nonce secret.

    The Verifier's nonce goes to ``verifier/nonce`` (0600); a Prover's to
    ``nonce_file`` (its own). Raises `FormatError` if the period's checkpoint
    is already recorded (too late to commit).
    """
    plan = load_plan(folder)
    party = "verifier" if actor == plan["verifier"] else "prover"
    if party == "prover" and actor not in plan["provers"]:
        msg = f"audit commit: {actor!r} is neither the plan's Verifier nor one of its Provers"
        raise FormatError(msg)
    if folder.checkpoint.exists():
        msg = f"audit commit: the period already started ({folder.checkpoint}); too late"
        raise FormatError(msg)
    secret = nonce if nonce is not None else secrets.token_bytes(32)
    digest = commit_nonce(party, secret)
    where = folder.verifier("nonce") if party == "verifier" else nonce_file
    if where is None:
        msg = "audit commit: a Prover must name the file that keeps its nonce (--nonce-file)"
        raise FormatError(msg)
    write_bytes(where, secret.hex().encode() + b"\n", private=True)
    envelope = sample_request(
        "commit",
        origin=client.origin,
        actor=actor,
        key=key,
        period=plan["period"],
        value=str(digest),
    )
    ack = client.submit(envelope)
    record = {"actor": actor, "party": party, "commitment": str(digest), "index": ack.index}
    if party == "verifier":
        write_json(folder.verifier("commitment.json"), record)
    return record


def _read_nonce(path: Path) -> bytes:
    try:
        raw = path.read_text(encoding="ascii").strip()
        nonce = bytes.fromhex(raw)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        msg = f"nonce file {path}: expected 64 hex digits ({e})"
        raise FormatError(msg) from e
    if len(nonce) != 32:  # noqa: PLR2004
        msg = f"nonce file {path}: expected 32 bytes, got {len(nonce)}"
        raise FormatError(msg)
    return nonce


def start(folder: AuditFolder, client: RegistryClient) -> dict[str, Any]:
    """Record the checkpoint that starts the period (``checkpoint.txt``); after the commitments.

    Raises:
        FormatError: Already started, or the Verifier's commitment is not logged yet.
    """
    plan = load_plan(folder)
    if folder.checkpoint.exists():
        msg = f"audit start: the period already started ({folder.checkpoint})"
        raise FormatError(msg)
    _checked_trust(plan, client, "audit start")
    record = read_json(folder.verifier("commitment.json"), "the Verifier's commitment")
    checkpoint = client.checkpoint()
    if client.last_signed is None:  # pragma: no cover - set by checkpoint()
        msg = "audit start: no signed checkpoint"
        raise IntegrityError(msg)
    if int(record["index"]) >= checkpoint.size:
        msg = f"audit start: the Verifier's commitment is not in checkpoint {checkpoint.size}"
        raise FormatError(msg)
    write_bytes(folder.checkpoint, client.last_signed.to_bytes())
    logged = AuditQueries(client).commitments(plan["period"], checkpoint)
    committed = sorted({c.actor for c in logged if c.kind == "commit"})
    return {"size": checkpoint.size, "root": checkpoint.root_hash.hex(), "committed": committed}


def reveal(
    folder: AuditFolder,
    client: RegistryClient,
    *,
    actor: str,
    key: Signer,
    nonce_file: Path | None = None,
) -> dict[str, Any]:
    """Log ``actor``'s nonce (after the period: `start` must have run for the Verifier)."""
    plan = load_plan(folder)
    party = "verifier" if actor == plan["verifier"] else "prover"
    if party == "verifier":
        if not folder.checkpoint.exists():
            msg = "audit reveal: the period has not started; run 'audit start' first"
            raise FormatError(msg)
        nonce_path = folder.verifier("nonce")
    else:
        if nonce_file is None:
            msg = "audit reveal: a Prover must name its nonce file (--nonce-file)"
            raise FormatError(msg)
        nonce_path = nonce_file
    nonce = _read_nonce(nonce_path)
    envelope = sample_request(
        "reveal",
        origin=client.origin,
        actor=actor,
        key=key,
        period=plan["period"],
        value=nonce.hex(),
    )
    ack = client.submit(envelope)
    record = {"actor": actor, "party": party, "index": ack.index}
    if party == "verifier":
        write_json(folder.verifier("reveal.json"), record)
    return record


def _checked_trust(plan: dict[str, Any], client: RegistryClient, where: str) -> AuditTrust:
    """The plan's trust; a plan with a policy needs a client that applies it."""
    trust = AuditTrust.of_plan(plan)
    if trust.policy is not None:
        trust.check_client(client, where)
    return trust


def _committed(folder: AuditFolder, trust: AuditTrust) -> WitnessedCheckpoint:
    try:
        data = folder.checkpoint.read_bytes()
    except OSError as e:
        msg = f"checkpoint {folder.checkpoint}: cannot read ({e.strerror}); run 'audit start'"
        raise FormatError(msg) from e
    return trust.verify(data)


def committed_checkpoint(folder: AuditFolder, client: RegistryClient) -> Checkpoint:
    """The period's checkpoint from ``checkpoint.txt``, verified under the plan's trust.

    Raises:
        QuorumNotMet: The plan names a tlog-policy whose quorum it lacks.
        IntegrityError: Not signed by the log, or a bad cosignature.
    """
    plan = load_plan(folder)
    return _committed(folder, _checked_trust(plan, client, "audit")).checkpoint


def sample(folder: AuditFolder, client: RegistryClient, prover: str) -> dict[str, Any]:
    """Check the commit-reveal in the log and draw ``prover``'s sample (``sample/PROVER.json``).

    Raises:
        CommitRevealError: A commitment or reveal missing, late or mismatched.
        IntegrityError: A proof fails, the log forked, or the server's
            holdings differ from the replayed log's; `RollbackError` if the
            registry's checkpoint is older than one an earlier step accepted.
        QuorumNotMet: Under the plan's tlog-policy, a checkpoint (the
            committed one or the registry's latest) lacks the witness quorum.
    """
    plan = load_plan(folder)
    if prover not in plan["provers"]:
        msg = f"audit sample: {prover!r} is not one of the plan's Provers"
        raise FormatError(msg)
    trust = _checked_trust(plan, client, "audit sample")
    witnessed = _committed(folder, trust)
    committed = witnessed.checkpoint
    latest = client.checkpoint()
    client.verify_consistency(committed, latest)
    queries = AuditQueries(client)
    logged = queries.commitments(plan["period"], latest)
    reveals = check_commit_reveal(
        logged,
        period=plan["period"],
        verifier=plan["verifier"],
        prover=prover,
        committed_size=committed.size,
    )
    holdings = queries.holdings(prover, committed)
    reg = plan["registry"]
    view = queries.replay(
        committed, reg["registrar_id"], VerifyingKey.from_raw(bytes.fromhex(reg["registrar_key"]))
    )
    if view.holdings(prover) != holdings:
        msg = (
            f"registry: its holdings of {prover!r} at size {committed.size} differ from the "
            "replayed log's"
        )
        raise IntegrityError(msg)
    candidates = [h.serial for h in holdings]
    size = int(plan["provers"][prover]["sample_size"])
    draw = draw_sample(
        candidates,
        min(size, len(candidates)),
        verifier_nonce=reveals.verifier_nonce,
        verifier_commitment=reveals.verifier_commitment,
        prover_nonce=reveals.prover_nonce,
        prover_commitment=reveals.prover_commitment,
        registry_root=committed.root_hash,
        period=plan["period"],
    )
    doc = {
        "prover": prover,
        "checkpoint": {
            "size": committed.size,
            "root": committed.root_hash.hex(),
            "witnesses": sorted(witnessed.witnesses),
            "trust": trust.describe(witnessed),
        },
        "log_indices": reveals.indices,
        "holdings": [h.to_json() for h in holdings],
        "draw": draw.to_json(),
    }
    write_json(folder.step("sample", prover), doc)
    return doc
