"""Attacks by the registry's log operator: a split view and a rollback (paper §6).

The registry's log key alone can sign any history. A dishonest operator (or
one coerced by a state) keeps two: the real one, shown to a foreign
government, and a fork that hides a chip transfer, shown to an inspector.
The defence is witnessing: three real `Witness` instances (each with its
SQLite state) cosign only checkpoints consistent with what they cosigned
before, and every party accepts a checkpoint only under a 2-of-3 `Policy`
and only if it extends the newest it accepted (`TrustedCheckpoints`).

* **split-view**: the operator builds both histories from a common prefix,
  shows each witness one of them first (a random partition per trial, the
  operator's best strategy being to split them), collects what cosignatures
  it can and hands each party its view. Two views can each reach a quorum
  only if some witness cosigned both, which its consistency check forbids:
  at least one party must refuse. Variants: the same size with two roots, or
  the fork larger than the real log.
* **log-rollback**: a party already accepted a checkpoint that includes a
  transfer; the operator then serves an older, validly cosigned checkpoint
  (from before it) to make the transfer disappear.

The inspector is an audit (`computewatch.inspection`): its plan names the
2-of-3 tlog-policy file and its folder's ``checkpoints.db`` remembers what an
earlier step accepted (`AuditTrust`), exactly as ``computewatch audit``
accepts the registry's checkpoints; ``inspection_refused`` records whether
the audit itself refused the fork (when it did not, the fork had a quorum
and the government refuses the real log instead).

Each trial also runs the honest log through the same defence (both parties
see the real history) and records ``honest_refused`` (must be 0).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from computewatch.attacks._harness import SCALE, Attempt, Detection, Scale
from computewatch.crypto import (
    Checkpoint,
    CosignatureKind,
    Cosigner,
    MerkleLog,
    NoteSigner,
    Policy,
    SignedCheckpoint,
    SizeConflict,
    TrustedCheckpoints,
    Witness,
    WitnessError,
    add_checkpoint_body,
    canonical_json,
)
from computewatch.errors import ComputeWatchError
from computewatch.inspection import AuditFolder, AuditTrust

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun
    from computewatch.verification import VerificationPolicy

__all__ = ["LogRollback", "SplitView"]

ORIGIN = "registry.attack.computewatch/log"
_WITNESSES = 3
_QUORUM = 2
_NOW = 1_800_000_000


def _entries(n: int, tag: str) -> list[bytes]:
    return [canonical_json({"event": i, "history": tag}) for i in range(n)]


def _log(entries: list[bytes]) -> MerkleLog:
    log = MerkleLog.in_memory()
    log.append_many(entries)
    return log


class _World:
    """The operator's log key, three witnesses with SQLite state, and the 2-of-3 policy."""

    def __init__(self, folder: Path, trial: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.signer = NoteSigner.from_seed(ORIGIN, bytes([trial % 251 + 1]) * 31 + b"\x07")
        self.cosigners = [
            Cosigner.from_seed(
                f"w{i}.witness.attack", CosignatureKind.ED25519, bytes([i + 1, trial % 256]) * 16
            )
            for i in range(_WITNESSES)
        ]
        self.witnesses = [
            Witness.open(
                folder / f"w{i}.db", [c], {ORIGIN: [self.signer.verifier]}, clock=lambda: _NOW
            )
            for i, c in enumerate(self.cosigners)
        ]
        lines = [f"log {self.signer.verifier.vkey}"]
        lines += [f"witness W{i} {c.key.vkey}" for i, c in enumerate(self.cosigners)]
        lines += [f"group q {_QUORUM} {' '.join(f'W{i}' for i in range(_WITNESSES))}", "quorum q"]
        self.policy = Policy.parse("\n".join(lines) + "\n")
        self.folder = folder

    def push(self, w: int, log: MerkleLog, size: int, old: int) -> SignedCheckpoint | None:
        """The operator asks witness ``w`` to cosign ``log`` at ``size``: the note, or None.

        On a 409 it retries from the witness's size with a proof from its own
        log, as a capable operator would.
        """
        signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, size, log.root(size)), [self.signer])
        for _attempt in range(2):
            proof = log.consistency_proof(old, size) if 0 < old < size else ()
            body = add_checkpoint_body(old, proof, signed.to_bytes())
            try:
                lines = self.witnesses[w].add_checkpoint(body)
            except SizeConflict as e:
                if e.latest_size > size:
                    return None
                old = e.latest_size
                continue
            except WitnessError:
                return None
            return SignedCheckpoint.parse(signed.to_bytes() + lines)
        return None

    def party(self, name: str) -> TrustedCheckpoints:
        """A party's (inspector's, government's) memory of accepted checkpoints."""
        return TrustedCheckpoints.open(self.folder / f"{name}.db", self.policy)

    def audit(self, name: str) -> TrustedCheckpoints:
        """An inspector's audit: the plan's policy file, the audit folder's accepted checkpoints."""
        path = self.folder / f"{name}-policy.txt"
        path.write_text(self.policy.to_text())
        trust = AuditTrust.from_file(self.signer.verifier, path)
        return trust.state(AuditFolder(self.folder / f"{name}-audit"))

    def close(self) -> None:
        for w in self.witnesses:
            w.close()


def _merge(views: list[SignedCheckpoint]) -> SignedCheckpoint | None:
    """One note with every cosignature collected for the same checkpoint."""
    if not views:
        return None
    first = views[0]
    return first.with_signatures(s for v in views[1:] for s in v.note.signatures)


def _accepts(party: TrustedCheckpoints, view: SignedCheckpoint | None, log: MerkleLog) -> str:
    """'' if the party accepts the view, else the error type that refused it."""
    if view is None:
        return "no-cosignature"
    try:
        party.accept(view, ORIGIN, log.consistency_proof, now=_NOW)
    except ComputeWatchError as e:
        return type(e).__name__
    return ""


def _honest_refused(folder: Path, trial: int, log: MerkleLog, sizes: Sequence[int]) -> bool:
    """Whether the real history alone, pushed to fresh witnesses, is ever refused by a party."""
    world = _World(folder, trial)
    try:
        with world.party("honest") as party:
            old = 0
            for size in sizes:
                views = [world.push(w, log, size, old) for w in range(_WITNESSES)]
                if _accepts(party, _merge([v for v in views if v is not None]), log):
                    return True
                old = size
    finally:
        world.close()
    return False


class SplitView:
    """Two different histories signed by the log, one shown to each party."""

    name = "split-view"
    threat = "§6: the registry operator shows the inspector and a government different logs"
    expected = ("QuorumNotMet",)
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Build the real and the forked log and try to get both witnessed."""
        del bases, scale
        rng = random.Random(trial)  # noqa: S311 - the operator's choices, not cryptography
        world = _World(workdir / f"{self.name}-{trial}", trial)
        prefix = rng.randrange(1, 40)
        real_size = prefix + rng.randrange(1, 30)
        variant = trial % 3  # 0: same size, 1: fork larger, 2: fork smaller
        fork_size = {0: real_size, 1: real_size + 5, 2: prefix + 1}[variant]
        common = _entries(prefix, "common")
        real = _log(common + _entries(real_size - prefix, "real (transfer to lab-b logged)"))
        fork = _log(common + _entries(fork_size - prefix, "fork (transfer hidden)"))
        # honest history up to the fork point, witnessed by everyone
        shared = [world.push(w, real, prefix, 0) for w in range(_WITNESSES)]
        # the operator's partition: which witnesses see the fork first
        order = list(range(_WITNESSES))
        rng.shuffle(order)
        cut = rng.randrange(1, _WITNESSES)
        first_fork = set(order[:cut])
        real_views: list[SignedCheckpoint] = []
        fork_views: list[SignedCheckpoint] = []
        for w in range(_WITNESSES):  # each witness sees its first view, then the other
            plan = (
                [(fork, fork_size), (real, real_size)]
                if w in first_fork
                else [(real, real_size), (fork, fork_size)]
            )
            for log, size in plan:
                view = world.push(w, log, size, prefix)
                if view is not None:
                    (fork_views if log is fork else real_views).append(view)
        data = {
            "world": world,
            "real": real,
            "fork": fork,
            "real_view": _merge(real_views),
            "fork_view": _merge(fork_views),
            "shared": [s for s in shared if s is not None],
            "prefix": prefix,
            "real_size": real_size,
            "fork_size": fork_size,
            "variant": variant,
            "witnesses_seeing_fork_first": len(first_fork),
            "honest_refused": int(
                _honest_refused(
                    workdir / f"{self.name}-{trial}-honest", trial, real, (prefix, real_size)
                )
            ),
        }
        return Attempt(data=data)

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """The inspector's audit gets the fork, the government the real log; both under 2-of-3."""
        del policy, rng
        d = attempt.data
        world: _World = d["world"]
        try:
            with world.audit("inspector") as inspector, world.party("government") as government:
                for party in (inspector, government):
                    _accepts(party, _merge(d["shared"]), d["real"])
                fork_refused = _accepts(inspector, d["fork_view"], d["fork"])
                real_refused = _accepts(government, d["real_view"], d["real"])
        finally:
            world.close()
        d["inspection_refused"] = int(bool(fork_refused))
        caught = bool(fork_refused or real_refused)
        checks = tuple(sorted({c for c in (fork_refused, real_refused) if c}))
        detail = (
            f"variant {d['variant']}: fork view refused by {fork_refused or 'nobody'}, "
            f"real view refused by {real_refused or 'nobody'}"
        )
        return Detection(detected=caught, checks=checks, detail=detail)


class LogRollback:
    """An older, validly cosigned checkpoint served after a newer one was accepted."""

    name = "log-rollback"
    threat = "§6: the registry operator rolls a party back to before a logged transfer"
    expected = ("RollbackError",)
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Witness the log at an older and a newer size; keep both cosigned checkpoints."""
        del bases, scale
        rng = random.Random(1000 + trial)  # noqa: S311 - the operator's choices
        world = _World(workdir / f"{self.name}-{trial}", trial)
        old_size = rng.randrange(1, 50)
        new_size = old_size + rng.randrange(1, 50)
        log = _log(_entries(new_size, "real"))
        old_views = [world.push(w, log, old_size, 0) for w in range(_WITNESSES)]
        new_views = [world.push(w, log, new_size, old_size) for w in range(_WITNESSES)]
        data = {
            "world": world,
            "log": log,
            "old": _merge([v for v in old_views if v is not None]),
            "new": _merge([v for v in new_views if v is not None]),
            "old_size": old_size,
            "new_size": new_size,
        }
        return Attempt(data=data)

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """The inspector's audit accepts the newer checkpoint, then is shown the older one."""
        del policy, rng
        d = attempt.data
        world: _World = d["world"]
        try:
            with world.audit("inspector") as party:
                honest = _accepts(party, d["new"], d["log"])
                refused = _accepts(party, d["old"], d["log"])
            d["honest_refused"] = int(bool(honest))
        finally:
            world.close()
        return Detection(
            detected=bool(refused),
            checks=(refused,) if refused else (),
            detail=f"newer size {d['new_size']} accepted ({honest or 'ok'}); "
            f"older size {d['old_size']} refused by {refused or 'nobody'}",
        )
