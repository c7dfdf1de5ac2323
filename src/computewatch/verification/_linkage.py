"""The checks of a verification that need no replay (private; see `_session`).

Precommitment (recomputed, and logged by every inspected chip before its
snapshots), what each chip logged of the run against the transcript (code
hash, precommitment, the host's steps vs the firmware's count), seeded W_0
from the manifest's layout, and each chip-logged snapshot's claim and ω
hash. `Session` inherits them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest
from computewatch.datacenter import (
    data_root,
    derive_init_seed,
    init_flat,
    manifest_digest,
    precommitment,
)
from computewatch.errors import FormatError
from computewatch.verification._chip_run import run_mismatches
from computewatch.verification._results import CheckResult

if TYPE_CHECKING:
    from computewatch.chip import LogEntry
    from computewatch.verification._reader import TranscriptReader
    from computewatch.verification._verify import ChipEvidence

__all__ = ["StaticChecks"]


class StaticChecks:
    """Checks on the transcript and chip logs alone."""

    reader: TranscriptReader
    chips: list[ChipEvidence]
    checks: list[CheckResult]

    # -- 2. precommitment --------------------------------------------------

    def precommitment(self) -> None:
        reader = self.reader
        roots = [r["batch_root"] for r in reader.step_records]
        recomputed = precommitment(
            manifest_digest(reader.manifest), data_root([Digest.parse(r) for r in roots])
        )
        if str(recomputed) != reader.report["precommitment"]:
            self.checks.append(
                CheckResult.fail(
                    "precommitment", "does not recompute from the manifest and data order"
                )
            )
        else:
            self.checks.append(
                CheckResult.ok("precommitment", "recomputes from M and the data order")
            )
        for chip in self.chips:
            name = f"precommit-logged:{chip.serial}"
            pre = [
                e
                for e in chip.entries
                if e.kind == "precommit" and e.body.get("run_id") == reader.run_id
            ]
            snaps = [
                e
                for e in chip.entries
                if e.kind == "snapshot" and e.body.get("run_id") == reader.run_id
            ]
            if not pre:
                self.checks.append(
                    CheckResult.fail(name, "the chip never logged this run's precommitment")
                )
            elif pre[0].body.get("commitment") != reader.report["precommitment"]:
                self.checks.append(
                    CheckResult.fail(name, "the chip logged a different precommitment for this run")
                )
            elif snaps and snaps[0].seq < pre[0].seq:
                self.checks.append(CheckResult.fail(name, "a snapshot precedes the precommitment"))
            else:
                self.checks.append(
                    CheckResult.ok(name, f"logged at seq {pre[0].seq}, before its snapshots")
                )

    def chip_runs(self) -> None:
        """What each chip logged of the run (code hash, precommitment, steps) vs the transcript."""
        reader = self.reader
        for chip in self.chips:
            found = run_mismatches(
                chip.entries,
                run_id=reader.run_id,
                code_hash=str(reader.manifest["program"]["code_hash"]),
                precommitment=str(reader.report["precommitment"]),
                steps=reader.steps,
            )
            name = f"chip-run:{chip.serial}"
            if found:
                kinds = sorted({kind for kind, _ in found})
                detail = "; ".join(d for _, d in found)
                self.checks.append(CheckResult.fail(name, f"{', '.join(kinds)}: {detail}"[:400]))
            else:
                self.checks.append(
                    CheckResult.ok(name, "logged code hash, precommitment and steps match")
                )

    # -- 3. W_0 ------------------------------------------------------------

    def initialization(self) -> None:
        import torch  # noqa: PLC0415

        reader = self.reader
        if 0 not in reader.checkpoint_steps:
            self.checks.append(CheckResult.fail("init", "no checkpoint of W_0"))
            return
        init = reader.manifest.get("init", {})
        if init.get("scheme") != "cw-normal-v1" or init.get("seed") != "precommitment":
            self.checks.append(CheckResult.fail("init", f"unsupported init {init!r:.80}"))
            return
        seed = derive_init_seed(Digest.parse(reader.report["precommitment"]))
        expected = init_flat(reader.layout, seed, std=float(init.get("std", 0.02)))
        w0 = reader.checkpoint(0).weights
        if torch.equal(expected, w0):
            self.checks.append(
                CheckResult.ok("init", "W_0 regenerates exactly from the precommitted seed")
            )
        else:
            self.checks.append(
                CheckResult.fail(
                    "init",
                    "W_0 is not the seeded initialization",
                    distance=float((expected - w0).norm()),
                )
            )

    def _link(self, serial: str, entry: LogEntry, claims: dict[tuple[str, int], Any]) -> bool:
        """Check one logged snapshot's claim and ω copy (no replay yet)."""
        from computewatch.crypto import shard_hash  # noqa: PLC0415

        reader = self.reader
        name = f"snapshot:{serial}#{entry.seq}"
        claim = claims.get((serial, entry.seq))
        problem = None
        if claim is None:
            problem = "chip-logged snapshot missing from the report"
        elif str(claim.h) != entry.body.get("h") or claim.step != entry.body.get("step"):
            problem = "the report's claim differs from the chip log"
        elif reader.chip_slices.get(serial) != (claim.start, claim.stop):
            problem = "claimed slice differs from the manifest's sharding"
        elif not 0 < claim.step <= reader.steps:
            problem = f"step {claim.step} is outside the run"
        else:
            try:
                omega = reader.omega(serial, entry.seq)
            except FormatError as e:
                problem = f"ω copy unusable: {e.message}"
            else:
                if str(shard_hash(omega)) != entry.body.get("h"):
                    problem = "the ω copy does not hash to the logged h"
                elif omega.numel() != claim.stop - claim.start:
                    problem = f"ω has {omega.numel()} values, the slice {claim.stop - claim.start}"
        if problem is not None:
            self.checks.append(CheckResult.fail(name, problem))
            return False
        return True

    def _environment_check(self, env: object) -> CheckResult:
        """Exact replay needs the workers to run the manifest's pinned environment."""
        det = self.reader.determinism
        pinned = {"torch_version": det.torch_version, "cpu_capability": det.cpu_capability}
        if env == pinned:
            return CheckResult.ok(
                "environment",
                f"replay workers run the pinned {det.cpu_capability}, torch "
                f"{det.torch_version}, {det.threads} thread(s): replays compared bitwise",
            )
        return CheckResult.fail(
            "environment",
            f"replay worker environment: expected {pinned}, got {env!r:.120}"
            " (exact replay is not possible there)",
        )
