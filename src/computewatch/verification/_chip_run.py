"""What a chip logged of a run against what its transcript claims (pure; private).

The verifier (`StaticChecks.chip_runs`) and the inspection
(`computewatch.inspection.check_run_against_transcript`) call the same
function: the run's logged precommitment and code hash must be the
transcript's, every snapshot's step inside the run, and the host's step
numbers must advance with the steps the firmware counted itself
(``fw_steps``, logged with each scheduled snapshot).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.chip import LogEntry

__all__ = ["run_mismatches"]


def run_mismatches(
    entries: Sequence[LogEntry],
    *,
    run_id: str,
    code_hash: str,
    precommitment: str,
    steps: int,
) -> list[tuple[str, str]]:
    """What a chip logged of ``run_id`` against its transcript's claims: (kind, detail) pairs.

    Kinds: ``precommitment-mismatch`` (the run's logged precommitment is
    not the transcript's, or the run id carries two), ``code-hash-mismatch``
    (the code registered or snapshotted is not the transcript's),
    ``step-mismatch`` (a snapshot's step is outside the run, or the host's
    step numbers do not advance with the steps the firmware counted).
    """
    found: list[tuple[str, str]] = []
    logged = {
        str(e.body.get("commitment"))
        for e in entries
        if e.kind == "precommit" and e.body.get("run_id") == run_id
    }
    snaps = [e for e in entries if e.kind == "snapshot" and e.body.get("run_id") == run_id]
    logged |= {str(e.body["commitment"]) for e in snaps if e.body.get("commitment")}
    if logged and logged != {precommitment}:
        found.append(
            (
                "precommitment-mismatch",
                (
                    f"run {run_id!r}: the chip logged precommitment(s) {sorted(logged)} but the "
                    f"transcript claims {precommitment}"
                ),
            )
        )
    codes = {
        str(e.body.get("code_hash"))
        for e in entries
        if e.kind in ("register", "snapshot") and e.body.get("run_id") == run_id
    }
    if codes - {code_hash}:
        found.append(
            (
                "code-hash-mismatch",
                (
                    f"run {run_id!r}: the chip ran code {sorted(codes - {code_hash})}, "
                    f"the transcript claims {code_hash}"
                ),
            )
        )
    offsets: dict[Any, set[int]] = defaultdict(set)
    for e in snaps:
        step = e.body.get("step")
        if not isinstance(step, int) or not 0 <= step <= steps:
            found.append(
                (
                    "step-mismatch",
                    (
                        f"run {run_id!r}: snapshot seq {e.seq} at step {step!r}, outside the "
                        f"transcript's 0..{steps}"
                    ),
                )
            )
            continue
        fw_steps = e.body.get("fw_steps")
        if e.body.get("trigger") == "schedule" and isinstance(fw_steps, int):
            offsets[e.body.get("register_seq")].add(step - fw_steps)
    for reg, seen in sorted(offsets.items(), key=lambda kv: str(kv[0])):
        if len(seen) > 1:
            found.append(
                (
                    "step-mismatch",
                    (
                        f"run {run_id!r} (register seq {reg}): the host's step numbers do not "
                        f"advance with the steps the firmware counted (offsets {sorted(seen)[:4]})"
                    ),
                )
            )
    return found
