"""A runnable corpus of attacks on the whole framework, and its benchmark.

Every attack builds itself on real components (`create`: real chips, real
training of the tiny example program, a capable spoofer's recommitment) and
is checked by the real defence (`detect`: `verify_chip_log`, `Chip.boot`,
`inspect_chip` or `verify_transcript`). `run_benchmark` measures detection
rates with exact intervals and the false-reject rate on honest runs. See
``README.md`` beside this file for each attack and the measured results.

Example::

    >>> from computewatch.attacks import attack_names
    >>> "omega-as-init" in attack_names()
    True
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.attacks._adversarial import AdversarialExamples
    from computewatch.attacks._benchmark import BenchmarkInjection
    from computewatch.attacks._chip_clock import ClockSetForward
    from computewatch.attacks._chip_evidence import (
        CodeHashLie,
        EmptiedLog,
        FirmwareUpdateBeforeInspection,
        HugeFirmwareVersion,
        PrecommitmentLie,
        SlowedHostClock,
        StepNumberLie,
        TruncatedLog,
    )
    from computewatch.attacks._chip_registry import ReceiptWithheld, RolledBackState
    from computewatch.attacks._chip_reports import (
        CHIP_EVIDENCE_ATTACKS,
        DoubleClaim,
        ReceiptMisuse,
        UnreportedRun,
    )
    from computewatch.attacks._corpus import (
        ATTACKS,
        LONG_POLICY,
        SCALES,
        attack_names,
        campaign_setup,
        clopper_pearson,
        default_policy,
        false_reject_rate,
        honest_trials,
        markdown_table,
        one_sided_bounds,
        plot_detection,
        run_benchmark,
        run_scales,
        summarize_false_rejects,
    )
    from computewatch.attacks._elements import (
        Elements,
        FileElements,
        TpmElements,
        current_elements,
        use_elements,
    )
    from computewatch.attacks._harness import (
        LONG,
        SCALE,
        TINY,
        Attack,
        Attempt,
        Detection,
        HonestRun,
        Scale,
        make_spec,
        recommit,
        run_on_chip,
    )
    from computewatch.attacks._location import (
        DelayingRelay,
        LocationDelayedAnswer,
        LocationOtherChipKey,
        LocationRelay,
        LocationReplayedAnswer,
    )
    from computewatch.attacks._location_registry import LocationForgedCheck
    from computewatch.attacks._protocol import (
        FirmwareRollback,
        ForgedLogEntry,
        HiddenSnapshot,
        ReplayedLogEntry,
        ResoldChip,
        UnregisteredChip,
    )
    from computewatch.attacks._splitview import LogRollback, SplitView
    from computewatch.attacks._step_audit import (
        ConcentratedSubstitution,
        InIntervalReordering,
        SingleStepSubstitution,
        trained_batches,
    )
    from computewatch.attacks._swap import FixedScheduler, SnapshotSwap
    from computewatch.attacks._tolerance import NoiseUnderEpsilon, SmallUpdateSpoof
    from computewatch.attacks._training import DataSubstitution, RestartChain
    from computewatch.attacks._transcript import (
        CheckpointRedirect,
        FewerStepsClaimed,
        FinalCheckpointSwap,
        InterpolatedCheckpoints,
        LearningRateLie,
        OmegaAsInit,
        ShardRelocation,
    )
    from computewatch.attacks._verdicts import VerdictSwap

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "AdversarialExamples": "computewatch.attacks._adversarial",
            "BenchmarkInjection": "computewatch.attacks._benchmark",
            "ClockSetForward": "computewatch.attacks._chip_clock",
            "CodeHashLie": "computewatch.attacks._chip_evidence",
            "EmptiedLog": "computewatch.attacks._chip_evidence",
            "FirmwareUpdateBeforeInspection": "computewatch.attacks._chip_evidence",
            "HugeFirmwareVersion": "computewatch.attacks._chip_evidence",
            "PrecommitmentLie": "computewatch.attacks._chip_evidence",
            "SlowedHostClock": "computewatch.attacks._chip_evidence",
            "StepNumberLie": "computewatch.attacks._chip_evidence",
            "TruncatedLog": "computewatch.attacks._chip_evidence",
            "ReceiptWithheld": "computewatch.attacks._chip_registry",
            "RolledBackState": "computewatch.attacks._chip_registry",
            "CHIP_EVIDENCE_ATTACKS": "computewatch.attacks._chip_reports",
            "DoubleClaim": "computewatch.attacks._chip_reports",
            "ReceiptMisuse": "computewatch.attacks._chip_reports",
            "UnreportedRun": "computewatch.attacks._chip_reports",
            "ATTACKS": "computewatch.attacks._corpus",
            "LONG_POLICY": "computewatch.attacks._corpus",
            "SCALES": "computewatch.attacks._corpus",
            "attack_names": "computewatch.attacks._corpus",
            "campaign_setup": "computewatch.attacks._corpus",
            "clopper_pearson": "computewatch.attacks._corpus",
            "default_policy": "computewatch.attacks._corpus",
            "false_reject_rate": "computewatch.attacks._corpus",
            "honest_trials": "computewatch.attacks._corpus",
            "markdown_table": "computewatch.attacks._corpus",
            "one_sided_bounds": "computewatch.attacks._corpus",
            "plot_detection": "computewatch.attacks._corpus",
            "run_benchmark": "computewatch.attacks._corpus",
            "run_scales": "computewatch.attacks._corpus",
            "summarize_false_rejects": "computewatch.attacks._corpus",
            "Elements": "computewatch.attacks._elements",
            "FileElements": "computewatch.attacks._elements",
            "TpmElements": "computewatch.attacks._elements",
            "current_elements": "computewatch.attacks._elements",
            "use_elements": "computewatch.attacks._elements",
            "LONG": "computewatch.attacks._harness",
            "SCALE": "computewatch.attacks._harness",
            "TINY": "computewatch.attacks._harness",
            "Attack": "computewatch.attacks._harness",
            "Attempt": "computewatch.attacks._harness",
            "Detection": "computewatch.attacks._harness",
            "HonestRun": "computewatch.attacks._harness",
            "Scale": "computewatch.attacks._harness",
            "make_spec": "computewatch.attacks._harness",
            "recommit": "computewatch.attacks._harness",
            "run_on_chip": "computewatch.attacks._harness",
            "DelayingRelay": "computewatch.attacks._location",
            "LocationDelayedAnswer": "computewatch.attacks._location",
            "LocationOtherChipKey": "computewatch.attacks._location",
            "LocationRelay": "computewatch.attacks._location",
            "LocationReplayedAnswer": "computewatch.attacks._location",
            "LocationForgedCheck": "computewatch.attacks._location_registry",
            "FirmwareRollback": "computewatch.attacks._protocol",
            "ForgedLogEntry": "computewatch.attacks._protocol",
            "HiddenSnapshot": "computewatch.attacks._protocol",
            "ReplayedLogEntry": "computewatch.attacks._protocol",
            "ResoldChip": "computewatch.attacks._protocol",
            "UnregisteredChip": "computewatch.attacks._protocol",
            "LogRollback": "computewatch.attacks._splitview",
            "SplitView": "computewatch.attacks._splitview",
            "ConcentratedSubstitution": "computewatch.attacks._step_audit",
            "InIntervalReordering": "computewatch.attacks._step_audit",
            "SingleStepSubstitution": "computewatch.attacks._step_audit",
            "trained_batches": "computewatch.attacks._step_audit",
            "FixedScheduler": "computewatch.attacks._swap",
            "SnapshotSwap": "computewatch.attacks._swap",
            "NoiseUnderEpsilon": "computewatch.attacks._tolerance",
            "SmallUpdateSpoof": "computewatch.attacks._tolerance",
            "DataSubstitution": "computewatch.attacks._training",
            "RestartChain": "computewatch.attacks._training",
            "CheckpointRedirect": "computewatch.attacks._transcript",
            "FewerStepsClaimed": "computewatch.attacks._transcript",
            "FinalCheckpointSwap": "computewatch.attacks._transcript",
            "InterpolatedCheckpoints": "computewatch.attacks._transcript",
            "LearningRateLie": "computewatch.attacks._transcript",
            "OmegaAsInit": "computewatch.attacks._transcript",
            "ShardRelocation": "computewatch.attacks._transcript",
            "VerdictSwap": "computewatch.attacks._verdicts",
        },
    )

__all__ = [
    "ATTACKS",
    "CHIP_EVIDENCE_ATTACKS",
    "LONG",
    "LONG_POLICY",
    "SCALE",
    "SCALES",
    "TINY",
    "AdversarialExamples",
    "Attack",
    "Attempt",
    "BenchmarkInjection",
    "CheckpointRedirect",
    "ClockSetForward",
    "CodeHashLie",
    "ConcentratedSubstitution",
    "DataSubstitution",
    "DelayingRelay",
    "Detection",
    "DoubleClaim",
    "Elements",
    "EmptiedLog",
    "FewerStepsClaimed",
    "FileElements",
    "FinalCheckpointSwap",
    "FirmwareRollback",
    "FirmwareUpdateBeforeInspection",
    "FixedScheduler",
    "ForgedLogEntry",
    "HiddenSnapshot",
    "HonestRun",
    "HugeFirmwareVersion",
    "InIntervalReordering",
    "InterpolatedCheckpoints",
    "LearningRateLie",
    "LocationDelayedAnswer",
    "LocationForgedCheck",
    "LocationOtherChipKey",
    "LocationRelay",
    "LocationReplayedAnswer",
    "LogRollback",
    "NoiseUnderEpsilon",
    "OmegaAsInit",
    "PrecommitmentLie",
    "ReceiptMisuse",
    "ReceiptWithheld",
    "ReplayedLogEntry",
    "ResoldChip",
    "RestartChain",
    "RolledBackState",
    "Scale",
    "ShardRelocation",
    "SingleStepSubstitution",
    "SlowedHostClock",
    "SmallUpdateSpoof",
    "SnapshotSwap",
    "SplitView",
    "StepNumberLie",
    "TpmElements",
    "TruncatedLog",
    "UnregisteredChip",
    "UnreportedRun",
    "VerdictSwap",
    "attack_names",
    "campaign_setup",
    "clopper_pearson",
    "current_elements",
    "default_policy",
    "false_reject_rate",
    "honest_trials",
    "make_spec",
    "markdown_table",
    "one_sided_bounds",
    "plot_detection",
    "recommit",
    "run_benchmark",
    "run_on_chip",
    "run_scales",
    "summarize_false_rejects",
    "trained_batches",
    "use_elements",
]
