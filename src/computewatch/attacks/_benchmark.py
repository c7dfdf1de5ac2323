"""Attacks on the rules' benchmarks: the Prover's program answers for a benchmark (§2.1).

The final model's scores are computed in a replay worker, where the
Prover's program runs. `BenchmarkInjection` trains an honest run whose
program, once inside a worker, adds a score the rule file never declared
(``cyber_uplift = 0.0``) to the worker's answer, aiming at a mitigation
rule that requires that score (as the examples' ``rl-code-needs-cyber-eval``
does): if the cluster took every name the worker returned, the rule would
be satisfied by a number nobody agreed on. The defence is in
`computewatch.verification`: only the benchmarks the rule file declares
are taken from the answer, so the rule stays violated.

A worker can still misreport a *declared* benchmark's score (the model is
the Prover's code; ADR 0025): that is not claimed to be caught here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.attacks._harness import EXAMPLE, SCALE, Attempt, Detection, run_on_chip
from computewatch.datacenter import TranscriptPaths
from computewatch.rules import load_rules
from computewatch.verification import verify_transcript

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun, Scale
    from computewatch.verification import VerificationPolicy

__all__ = ["BenchmarkInjection"]

_RULE = "needs-cyber-eval"

_RULES = f"""\
version: 1
name: benchmark injection
benchmarks:
  - {{name: bits_per_byte, kind: held-out-bits-per-byte, points: 8}}
rules:
  - id: {_RULE}
    kind: mitigation
    when: "true"
    require: "has(benchmarks.cyber_uplift) && benchmarks.cyber_uplift < 0.2"
"""

_PAYLOAD = r"""

# ---- benchmark injection (fires only inside a replay worker) ----------------
import inspect as _inspect
import sys as _sys


def _inject():
    for frame in _inspect.stack():
        if frame.function == "run_tasks" and "_benchmarks" in frame.frame.f_globals:
            names = frame.frame.f_globals
            real = names["_benchmarks"]

            def _benchmarks(*args, **kwargs):
                answer = real(*args, **kwargs)
                answer["scores"]["cyber_uplift"] = 0.0
                return answer

            names["_benchmarks"] = _benchmarks
            return


if _sys.argv[0].endswith("_worker.py"):
    _inject()
"""


class BenchmarkInjection:
    """The Prover's program adds an undeclared benchmark score to the worker's answer."""

    name = "benchmark-injection"
    threat = "§2.1 rules: the Prover's program answers a benchmark the rule file never declared"
    expected = (f"rule:{_RULE}",)
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train with the injecting program on a fresh chip; write the regime's rule file."""
        del bases
        name = f"{self.name}-{trial}"
        workdir.mkdir(parents=True, exist_ok=True)
        program = workdir / f"{name}.py"
        program.write_text(EXAMPLE.read_text() + _PAYLOAD)
        run = run_on_chip(workdir, name, serial=f"CW-I-{trial}", scale=scale, program_path=program)
        rules = workdir / f"{name}-rules.yaml"
        rules.write_text(_RULES)
        return Attempt(run=run, data={"rules": rules})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Verify with the rule file: caught if the mitigation rule is not satisfied."""
        run = attempt.run
        assert run is not None
        verdict = verify_transcript(
            run.run_dir,
            TranscriptPaths(run.run_dir).report,
            run.evidence(),
            policy,
            rng,
            rules=load_rules(attempt.data["rules"]),
            declared={"reported": True, "approvals": []},
        )
        status = {r["id"]: r["status"] for r in verdict.rules}.get(_RULE, "missing")
        if status == "compliant":
            return Detection(detected=False, detail="the injected cyber_uplift score was accepted")
        return Detection(
            detected=True,
            checks=(f"rule:{_RULE}",),
            compute_fraction=verdict.compute_fraction,
            detail=f"rule {_RULE}: {status} (only declared benchmarks are taken)",
        )
