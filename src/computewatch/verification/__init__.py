"""The Verifier's side: Proof-of-Training-Transcript checks and the trusted cluster.

`verify_transcript` checks a Prover's transcript against its report and the
inspected chips' logs (commitment, precommitment, seeded W_0, snapshot
linkage by replay within a calibrated tolerance, budgeted segment replays,
spoof heuristics) and returns a `Verdict` that names no data, weights or
hyperparameters.

Example::

    >>> from computewatch.verification import ChipEvidence, verify_transcript
    >>> verdict = verify_transcript("runs/r1", "runs/r1/report.json", chips)  # doctest: +SKIP
    >>> verdict.passed  # doctest: +SKIP
    True
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.verification._audit import (
        Challenge,
        StepAudits,
        check_answer,
        draw_audit_steps,
        folder_challenge,
        miss_probability,
    )
    from computewatch.verification._bisect import (
        Localization,
        bisect_first_bad,
        checkpoint_commitments,
        committed_states,
        confirm_step,
        localize,
    )
    from computewatch.verification._challenge import answer_challenge, prover_challenge
    from computewatch.verification._chip_run import run_mismatches
    from computewatch.verification._cluster import (
        VERDICT_PAYLOAD_TYPE,
        ChipInput,
        ClusterJob,
        cluster_verify,
        read_verdict,
        write_verdict,
    )
    from computewatch.verification._engine import (
        Engine,
        Job,
        JobOutcome,
        LocalPool,
        RayPool,
        UnsafeInProcessEngine,
        WorkerLimits,
        execute_job,
    )
    from computewatch.verification._heuristics import (
        DEFAULT_HEURISTICS,
        HeuristicContext,
        claimed_compute_vs_chip_time,
        data_in_committed_set,
        loss_on_claimed_data,
        loss_trend,
        step_times_vs_chip_log,
        update_norms_vs_lr,
    )
    from computewatch.verification._prover import ProverCalls, WorkerFailed
    from computewatch.verification._reader import SnapshotClaim, TranscriptReader
    from computewatch.verification._replay import Replayer, Tolerance, replay_pair
    from computewatch.verification._results import VERDICT_FORMAT, CheckResult, CheckStatus, Verdict
    from computewatch.verification._sandbox import (
        ZYGOTE_ENV,
        Isolation,
        IsolationUnavailable,
        Layer,
        SandboxError,
        SandboxFailed,
        SandboxTimeout,
        probe_isolation,
        run_isolated,
    )
    from computewatch.verification._store import ArtifactStore, read_bounded
    from computewatch.verification._verify import (
        HEURISTICS,
        ChipEvidence,
        VerificationPolicy,
        verify_transcript,
    )

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "Challenge": "computewatch.verification._audit",
            "StepAudits": "computewatch.verification._audit",
            "check_answer": "computewatch.verification._audit",
            "draw_audit_steps": "computewatch.verification._audit",
            "folder_challenge": "computewatch.verification._audit",
            "miss_probability": "computewatch.verification._audit",
            "Localization": "computewatch.verification._bisect",
            "bisect_first_bad": "computewatch.verification._bisect",
            "checkpoint_commitments": "computewatch.verification._bisect",
            "committed_states": "computewatch.verification._bisect",
            "confirm_step": "computewatch.verification._bisect",
            "localize": "computewatch.verification._bisect",
            "answer_challenge": "computewatch.verification._challenge",
            "prover_challenge": "computewatch.verification._challenge",
            "run_mismatches": "computewatch.verification._chip_run",
            "VERDICT_PAYLOAD_TYPE": "computewatch.verification._cluster",
            "ChipInput": "computewatch.verification._cluster",
            "ClusterJob": "computewatch.verification._cluster",
            "cluster_verify": "computewatch.verification._cluster",
            "read_verdict": "computewatch.verification._cluster",
            "write_verdict": "computewatch.verification._cluster",
            "Engine": "computewatch.verification._engine",
            "Job": "computewatch.verification._engine",
            "JobOutcome": "computewatch.verification._engine",
            "LocalPool": "computewatch.verification._engine",
            "RayPool": "computewatch.verification._engine",
            "UnsafeInProcessEngine": "computewatch.verification._engine",
            "WorkerLimits": "computewatch.verification._engine",
            "execute_job": "computewatch.verification._engine",
            "DEFAULT_HEURISTICS": "computewatch.verification._heuristics",
            "HeuristicContext": "computewatch.verification._heuristics",
            "claimed_compute_vs_chip_time": "computewatch.verification._heuristics",
            "data_in_committed_set": "computewatch.verification._heuristics",
            "loss_on_claimed_data": "computewatch.verification._heuristics",
            "loss_trend": "computewatch.verification._heuristics",
            "step_times_vs_chip_log": "computewatch.verification._heuristics",
            "update_norms_vs_lr": "computewatch.verification._heuristics",
            "ProverCalls": "computewatch.verification._prover",
            "WorkerFailed": "computewatch.verification._prover",
            "SnapshotClaim": "computewatch.verification._reader",
            "TranscriptReader": "computewatch.verification._reader",
            "Replayer": "computewatch.verification._replay",
            "Tolerance": "computewatch.verification._replay",
            "replay_pair": "computewatch.verification._replay",
            "VERDICT_FORMAT": "computewatch.verification._results",
            "CheckResult": "computewatch.verification._results",
            "CheckStatus": "computewatch.verification._results",
            "Verdict": "computewatch.verification._results",
            "ZYGOTE_ENV": "computewatch.verification._sandbox",
            "Isolation": "computewatch.verification._sandbox",
            "IsolationUnavailable": "computewatch.verification._sandbox",
            "Layer": "computewatch.verification._sandbox",
            "SandboxError": "computewatch.verification._sandbox",
            "SandboxFailed": "computewatch.verification._sandbox",
            "SandboxTimeout": "computewatch.verification._sandbox",
            "probe_isolation": "computewatch.verification._sandbox",
            "run_isolated": "computewatch.verification._sandbox",
            "ArtifactStore": "computewatch.verification._store",
            "read_bounded": "computewatch.verification._store",
            "HEURISTICS": "computewatch.verification._verify",
            "ChipEvidence": "computewatch.verification._verify",
            "VerificationPolicy": "computewatch.verification._verify",
            "verify_transcript": "computewatch.verification._verify",
        },
    )

__all__ = [
    "DEFAULT_HEURISTICS",
    "HEURISTICS",
    "VERDICT_FORMAT",
    "VERDICT_PAYLOAD_TYPE",
    "ZYGOTE_ENV",
    "ArtifactStore",
    "Challenge",
    "CheckResult",
    "CheckStatus",
    "ChipEvidence",
    "ChipInput",
    "ClusterJob",
    "Engine",
    "HeuristicContext",
    "Isolation",
    "IsolationUnavailable",
    "Job",
    "JobOutcome",
    "Layer",
    "LocalPool",
    "Localization",
    "ProverCalls",
    "RayPool",
    "Replayer",
    "SandboxError",
    "SandboxFailed",
    "SandboxTimeout",
    "SnapshotClaim",
    "StepAudits",
    "Tolerance",
    "TranscriptReader",
    "UnsafeInProcessEngine",
    "Verdict",
    "VerificationPolicy",
    "WorkerFailed",
    "WorkerLimits",
    "answer_challenge",
    "bisect_first_bad",
    "check_answer",
    "checkpoint_commitments",
    "claimed_compute_vs_chip_time",
    "cluster_verify",
    "committed_states",
    "confirm_step",
    "data_in_committed_set",
    "draw_audit_steps",
    "execute_job",
    "folder_challenge",
    "localize",
    "loss_on_claimed_data",
    "loss_trend",
    "miss_probability",
    "probe_isolation",
    "prover_challenge",
    "read_bounded",
    "read_verdict",
    "replay_pair",
    "run_isolated",
    "run_mismatches",
    "step_times_vs_chip_log",
    "update_norms_vs_lr",
    "verify_transcript",
    "write_verdict",
]
