"""Recomputing a transcript's commitment from its files.

The commitment is the Merkle root (`commitment_root`) over named parts: the
manifest file, the program's code hash, the data root recomputed from every
step's point hashes, the step and metric files, the chips' snapshot claims
and every checkpoint file. Anyone holding the folder recomputes it with
`compute_commitment`; the Prover's report carries it; changing any data
point, hyperparameter or checkpoint byte changes it. Every file is read
through its typed parser (`_files.py`), so a malformed one is a
`FormatError` naming the file and the field.

Example::

    >>> root, parts, claims = compute_commitment("runs/run-1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from computewatch.crypto import Digest, json_digest
from computewatch.datacenter._checkpoint import file_digest
from computewatch.datacenter._data import batch_root, data_root
from computewatch.datacenter._files import (
    ChipClaims,
    ClaimRecord,
    IndexRecord,
    Manifest,
    StepRecord,
)
from computewatch.datacenter._program import program_code_hash
from computewatch.datacenter._transcript import TranscriptPaths, commitment_root, read_lines
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import os

__all__ = ["compute_commitment", "read_index", "read_manifest", "snapshot_claims"]


def snapshot_claims(paths: TranscriptPaths, manifest: Manifest) -> list[ClaimRecord]:
    """The snapshot claims of every chip of the run, in rank then log order.

    Raises:
        FormatError: a chip file is unreadable or malformed (naming the file and field).
    """
    claims: list[ClaimRecord] = []
    for serial, _ in manifest.chips:
        where = f"chips/{serial}.json"
        path = paths.chips / f"{serial}.json"
        if not path.exists():
            continue
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            msg = f"transcript file {where}: unreadable or not JSON ({e})"
            raise FormatError(msg) from e
        claims.extend(ChipClaims.from_dict(doc, where).claims(manifest.run_id))
    return claims


def read_manifest(paths: TranscriptPaths) -> Manifest:
    """Parse ``manifest.json``.

    Raises:
        FormatError: unreadable, not JSON, or a malformed field (named).
    """
    try:
        doc = json.loads(paths.manifest.read_bytes())
    except (OSError, ValueError) as e:
        msg = f"transcript {paths.root}: manifest.json unreadable or not JSON ({e})"
        raise FormatError(msg) from e
    return Manifest.from_dict(doc, "manifest.json")


def read_index(paths: TranscriptPaths, *, drop_torn: bool = False) -> list[IndexRecord]:
    """Parse ``checkpoints/index.jsonl`` (each line's file is its step's own name)."""
    return [
        IndexRecord.from_dict(rec, f"checkpoints/index.jsonl line {i}")
        for i, rec in enumerate(read_lines(paths.checkpoint_index, drop_torn=drop_torn), start=1)
    ]


def compute_commitment(
    run_dir: str | os.PathLike[str],
) -> tuple[Digest, dict[str, str], list[ClaimRecord]]:
    """Recompute `(root, parts, claims)` from the files of a transcript.

    Raises:
        FormatError: a file is unreadable or malformed (naming the file and field).
        IntegrityError: the code copy or a batch root does not match.
    """
    paths = TranscriptPaths(run_dir)
    manifest = read_manifest(paths)
    try:
        code = paths.program.read_bytes()
    except OSError as e:
        msg = f"transcript {paths.root}: code/program.py unreadable ({e.strerror})"
        raise FormatError(msg) from e
    if str(program_code_hash(code)) != manifest.code_hash:
        msg = "transcript code/program.py: its hash differs from the manifest's code_hash"
        raise IntegrityError(msg)
    roots = []
    for i, line in enumerate(read_lines(paths.steps)):
        rec = StepRecord.from_dict(line, f"data/steps.jsonl line {i + 1}")
        if rec.step != i:
            msg = f"transcript data/steps.jsonl line {i + 1}: expected step {i}, got {rec.step}"
            raise FormatError(msg)
        root = batch_root([Digest.parse("sha256:" + h) for h in rec.points])
        if str(root) != rec.batch_root:
            msg = f"transcript data/steps.jsonl step {i}: batch root does not match its points"
            raise IntegrityError(msg)
        roots.append(root)
    claims = snapshot_claims(paths, manifest)
    parts = {
        "manifest": str(file_digest(paths.manifest)),
        "code": str(program_code_hash(code)),
        "data": str(data_root(roots)),
        "steps": str(file_digest(paths.steps)),
        "metrics": str(file_digest(paths.metrics)),
        "claims": str(json_digest([c.to_dict() for c in claims])),
    }
    for entry in read_index(paths):
        parts[f"checkpoint/{entry.step:08d}"] = str(file_digest(paths.root / entry.file))
    return commitment_root(parts), parts, claims
