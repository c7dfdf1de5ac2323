"""Attacks on the audit's paperwork: a verdict filed under a run it is not the verdict of.

The trusted cluster signs each verdict, so a Prover (or anyone who can
write to the audit folder) cannot forge one; but a genuine verdict of a
*benign* run, filed under the id of a rule-breaking run, is still a
genuine signature. `VerdictSwap` files the benign run's signed verdict
for both runs (one verdict standing for two runs). The defence is
`computewatch.inspection.check_verdicts`: each verdict's run id
and transcript commitment must be those of the run's submitted report, and
one verdict stands for one run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

from computewatch.attacks._harness import Attempt, Detection
from computewatch.crypto import SigningKey, canonical_json, sign_envelope
from computewatch.datacenter import ProverReport, encode
from computewatch.errors import IntegrityError
from computewatch.inspection import AuditFolder, check_verdicts
from computewatch.verification import VERDICT_PAYLOAD_TYPE, verify_transcript

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun, Scale
    from computewatch.verification import VerificationPolicy

__all__ = ["VerdictSwap"]

_PROVER = "lab-x"


def _report(run_dir: Path) -> ProverReport:
    """An honest run's report, through its parser."""
    return ProverReport.from_dict(json.loads((run_dir / "report.json").read_bytes()))


class VerdictSwap:
    """A benign run's signed verdict filed under another run's id."""

    name = "verdict-swap"
    threat = "§3.1 audit: a genuine verdict of a benign run stands for a rule-breaking run"
    expected = ("IntegrityError",)
    needs_base = True

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale | None = None
    ) -> Attempt:
        """Two runs in a Prover's submission; the audit folder awaits the verdicts."""
        del scale
        root = workdir / f"{self.name}-{trial}"
        subs = root / "submissions" / _PROVER
        benign = bases[0].copy(subs / "runs" / "benign")
        other = bases[1 % len(bases)].copy(subs / "runs" / "other")
        first = _report(benign.run_dir).run_id
        report = _report(other.run_dir)
        if report.run_id == first:  # the corpus' bases share a run id: name the other apart
            report = replace(report, run_id=f"{first}-other")
            (other.run_dir / "report.json").write_bytes(encode(report))
        runs = {first: benign.run_dir, report.run_id: other.run_dir}
        doc = {
            "prover": _PROVER,
            "chips": {},
            "runs": {run: {"transcript": str(p.relative_to(subs))} for run, p in runs.items()},
        }
        (subs / "submission.json").write_text(json.dumps(doc))
        return Attempt(run=benign, data={"root": root, "runs": runs})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Verify the benign run (a real, passing verdict), swap it in, run `check_verdicts`."""
        assert attempt.run is not None
        root: Path = attempt.data["root"]
        runs: dict[str, Path] = attempt.data["runs"]
        benign = _report(attempt.run.run_dir).run_id
        verdict = verify_transcript(
            attempt.run.run_dir, attempt.run.run_dir / "report.json", attempt.run.evidence(),
            policy, rng,
        )  # fmt: skip
        cluster = SigningKey.generate()
        envelope = sign_envelope(VERDICT_PAYLOAD_TYPE, canonical_json(verdict.to_json()), [cluster])
        folder = AuditFolder(root / "audit")
        filed = {}
        for run in runs:  # the benign run's genuine verdict, filed under every run
            path = folder.verdict(_PROVER, run)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(envelope.to_json())
            filed[run] = {"verdict": folder.relative(path)}
        index = {"prover": _PROVER, "runs": filed, "findings": []}
        folder.step("verify", _PROVER).parent.mkdir(parents=True, exist_ok=True)
        folder.step("verify", _PROVER).write_text(json.dumps(index))
        try:
            check_verdicts(folder, root / "submissions", _PROVER, cluster.verifying_key)
        except IntegrityError as e:
            return Detection(detected=True, checks=("IntegrityError",), detail=e.message[:200])
        return Detection(
            detected=False, detail=f"the verdict of {benign!r} was accepted for every run"
        )
