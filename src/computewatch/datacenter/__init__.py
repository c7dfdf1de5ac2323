"""The Prover's side: recording training transcripts (paper §5, Appendix D).

A run is defined by a `RunSpec` and a `TrainingProgram`; `train` runs it on
one chip (one process of a multi-chip run), with the `Recorder` step hook
writing the transcript `T = {M, D, W}` folder, logging the precommitment and
giving the chip's firmware its chance to snapshot at every step. A lab that
keeps its own loop attaches a `Monitor` to its model, optimizer and data
loader instead, with its script's `LoopProgram` as the replay contract.

Example::

    >>> from computewatch.datacenter import RunSpec, train
    >>> spec = RunSpec(run_id="r1", program_path="examples/tinygpt.py", config=cfg,
    ...                batch_size=8, steps=20, data_seed=1, checkpoint_every=5)  # doctest: +SKIP
    >>> train(spec, "runs/r1", chip=chip).report["commitment"]  # doctest: +SKIP
"""

from computewatch.datacenter._checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    file_digest,
    load_checkpoint,
    save_checkpoint,
)
from computewatch.datacenter._commitment import (
    compute_commitment,
    read_index,
    read_manifest,
    snapshot_claims,
)
from computewatch.datacenter._contract import OPTIMIZER_CLASSES, LoopProgram, describe_optimizer
from computewatch.datacenter._data import DataSchedule, batch_root, data_root, point_hash
from computewatch.datacenter._determinism import Determinism, cpu_capability, set_determinism
from computewatch.datacenter._distributed import DistributedRunError, train_distributed
from computewatch.datacenter._files import (
    CheckpointRef,
    ChipClaims,
    ChipSnapshot,
    ClaimRecord,
    IndexRecord,
    Manifest,
    MetricsRecord,
    ProverReport,
    StepRecord,
    encode,
)
from computewatch.datacenter._layout import (
    INIT_SCHEMES,
    FlatLayout,
    derive_init_seed,
    flatten_model,
    init_flat,
    shard_range,
)
from computewatch.datacenter._monitor import CommittedBatches, Monitor
from computewatch.datacenter._precision import AUTOCAST_DTYPES, autocast_for
from computewatch.datacenter._program import (
    MAX_PROGRAM_BYTES,
    TrainingProgram,
    load_program,
    program_code_hash,
)
from computewatch.datacenter._recorder import (
    PRECOMMIT_DOMAIN,
    Recorder,
    TrainState,
    manifest_digest,
    precommitment,
)
from computewatch.datacenter._reduction import TREE_SCHEME, Reduction, tree_sum
from computewatch.datacenter._run import BatchFn, InitFn, RunSpec, TrainSummary, train
from computewatch.datacenter._shard_map import (
    FSDP2_KIND,
    ShardPiece,
    chunk_pieces,
    flat_order,
    parse_shard_map,
    piece_range,
)
from computewatch.datacenter._step_state import state_digest
from computewatch.datacenter._trainer import StepResult, Trainer
from computewatch.datacenter._transcript import (
    MANIFEST_FORMAT,
    REPORT_FORMAT,
    StorageError,
    TranscriptPaths,
    commitment_root,
    read_lines_checked,
)

__all__ = [
    "AUTOCAST_DTYPES",
    "CHECKPOINT_FORMAT",
    "FSDP2_KIND",
    "INIT_SCHEMES",
    "MANIFEST_FORMAT",
    "MAX_PROGRAM_BYTES",
    "OPTIMIZER_CLASSES",
    "PRECOMMIT_DOMAIN",
    "REPORT_FORMAT",
    "TREE_SCHEME",
    "BatchFn",
    "Checkpoint",
    "CheckpointRef",
    "ChipClaims",
    "ChipSnapshot",
    "ClaimRecord",
    "CommittedBatches",
    "DataSchedule",
    "Determinism",
    "DistributedRunError",
    "FlatLayout",
    "IndexRecord",
    "InitFn",
    "LoopProgram",
    "Manifest",
    "MetricsRecord",
    "Monitor",
    "ProverReport",
    "Recorder",
    "Reduction",
    "RunSpec",
    "ShardPiece",
    "StepRecord",
    "StepResult",
    "StorageError",
    "TrainState",
    "TrainSummary",
    "Trainer",
    "TrainingProgram",
    "TranscriptPaths",
    "autocast_for",
    "batch_root",
    "chunk_pieces",
    "commitment_root",
    "compute_commitment",
    "cpu_capability",
    "data_root",
    "derive_init_seed",
    "describe_optimizer",
    "encode",
    "file_digest",
    "flat_order",
    "flatten_model",
    "init_flat",
    "load_checkpoint",
    "load_program",
    "manifest_digest",
    "parse_shard_map",
    "piece_range",
    "point_hash",
    "precommitment",
    "program_code_hash",
    "read_index",
    "read_lines_checked",
    "read_manifest",
    "save_checkpoint",
    "set_determinism",
    "shard_range",
    "snapshot_claims",
    "state_digest",
    "train",
    "train_distributed",
    "tree_sum",
]
