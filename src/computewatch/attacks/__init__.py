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
