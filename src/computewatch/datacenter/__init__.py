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

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
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

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "CHECKPOINT_FORMAT": "computewatch.datacenter._checkpoint",
            "Checkpoint": "computewatch.datacenter._checkpoint",
            "file_digest": "computewatch.datacenter._checkpoint",
            "load_checkpoint": "computewatch.datacenter._checkpoint",
            "save_checkpoint": "computewatch.datacenter._checkpoint",
            "compute_commitment": "computewatch.datacenter._commitment",
            "read_index": "computewatch.datacenter._commitment",
            "read_manifest": "computewatch.datacenter._commitment",
            "snapshot_claims": "computewatch.datacenter._commitment",
            "OPTIMIZER_CLASSES": "computewatch.datacenter._contract",
            "LoopProgram": "computewatch.datacenter._contract",
            "describe_optimizer": "computewatch.datacenter._contract",
            "DataSchedule": "computewatch.datacenter._data",
            "batch_root": "computewatch.datacenter._data",
            "data_root": "computewatch.datacenter._data",
            "point_hash": "computewatch.datacenter._data",
            "Determinism": "computewatch.datacenter._determinism",
            "cpu_capability": "computewatch.datacenter._determinism",
            "set_determinism": "computewatch.datacenter._determinism",
            "DistributedRunError": "computewatch.datacenter._distributed",
            "train_distributed": "computewatch.datacenter._distributed",
            "CheckpointRef": "computewatch.datacenter._files",
            "ChipClaims": "computewatch.datacenter._files",
            "ChipSnapshot": "computewatch.datacenter._files",
            "ClaimRecord": "computewatch.datacenter._files",
            "IndexRecord": "computewatch.datacenter._files",
            "Manifest": "computewatch.datacenter._files",
            "MetricsRecord": "computewatch.datacenter._files",
            "ProverReport": "computewatch.datacenter._files",
            "StepRecord": "computewatch.datacenter._files",
            "encode": "computewatch.datacenter._files",
            "INIT_SCHEMES": "computewatch.datacenter._layout",
            "FlatLayout": "computewatch.datacenter._layout",
            "derive_init_seed": "computewatch.datacenter._layout",
            "flatten_model": "computewatch.datacenter._layout",
            "init_flat": "computewatch.datacenter._layout",
            "shard_range": "computewatch.datacenter._layout",
            "CommittedBatches": "computewatch.datacenter._monitor",
            "Monitor": "computewatch.datacenter._monitor",
            "AUTOCAST_DTYPES": "computewatch.datacenter._precision",
            "autocast_for": "computewatch.datacenter._precision",
            "MAX_PROGRAM_BYTES": "computewatch.datacenter._program",
            "TrainingProgram": "computewatch.datacenter._program",
            "load_program": "computewatch.datacenter._program",
            "program_code_hash": "computewatch.datacenter._program",
            "PRECOMMIT_DOMAIN": "computewatch.datacenter._recorder",
            "Recorder": "computewatch.datacenter._recorder",
            "TrainState": "computewatch.datacenter._recorder",
            "manifest_digest": "computewatch.datacenter._recorder",
            "precommitment": "computewatch.datacenter._recorder",
            "TREE_SCHEME": "computewatch.datacenter._reduction",
            "Reduction": "computewatch.datacenter._reduction",
            "tree_sum": "computewatch.datacenter._reduction",
            "BatchFn": "computewatch.datacenter._run",
            "InitFn": "computewatch.datacenter._run",
            "RunSpec": "computewatch.datacenter._run",
            "TrainSummary": "computewatch.datacenter._run",
            "train": "computewatch.datacenter._run",
            "FSDP2_KIND": "computewatch.datacenter._shard_map",
            "ShardPiece": "computewatch.datacenter._shard_map",
            "chunk_pieces": "computewatch.datacenter._shard_map",
            "flat_order": "computewatch.datacenter._shard_map",
            "parse_shard_map": "computewatch.datacenter._shard_map",
            "piece_range": "computewatch.datacenter._shard_map",
            "state_digest": "computewatch.datacenter._step_state",
            "StepResult": "computewatch.datacenter._trainer",
            "Trainer": "computewatch.datacenter._trainer",
            "MANIFEST_FORMAT": "computewatch.datacenter._transcript",
            "REPORT_FORMAT": "computewatch.datacenter._transcript",
            "StorageError": "computewatch.datacenter._transcript",
            "TranscriptPaths": "computewatch.datacenter._transcript",
            "commitment_root": "computewatch.datacenter._transcript",
            "read_lines_checked": "computewatch.datacenter._transcript",
        },
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
