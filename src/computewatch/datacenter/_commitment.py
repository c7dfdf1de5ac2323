"""Recomputing a transcript's commitment from its files.

The commitment is the Merkle root (`commitment_root`) over named parts: the
manifest file, the program's code hash, the data root recomputed from every
step's point hashes, the step and metric files, the chips' snapshot claims
and every checkpoint file. Anyone holding the folder recomputes it with
`compute_commitment`; the Prover's report carries it; changing any data
point, hyperparameter or checkpoint byte changes it.

Example::

    >>> root, parts, claims = compute_commitment("runs/run-1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest, json_digest
from computewatch.datacenter._checkpoint import file_digest
from computewatch.datacenter._data import batch_root, data_root
from computewatch.datacenter._program import program_code_hash
from computewatch.datacenter._transcript import TranscriptPaths, commitment_root, read_lines
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import os

__all__ = ["compute_commitment", "snapshot_claims"]


def snapshot_claims(paths: TranscriptPaths, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The snapshot claims of every chip of the run, in rank then log order."""
    claims: list[dict[str, Any]] = []
    for chip in manifest["sharding"]["chips"]:
        path = paths.chips / f"{chip['serial']}.json"
        if not path.exists():
            continue
        try:
            doc = json.loads(path.read_bytes())
            claims.extend(
                {
                    "serial": doc["serial"],
                    "seq": s["seq"],
                    "step": s["step"],
                    "h": s["h"],
                    "run_id": manifest["run_id"],
                    "slice": doc["slice"],
                }
                for s in doc["snapshots"]
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            msg = f"transcript file chips/{chip['serial']}.json: malformed ({e})"
            raise FormatError(msg) from e
    return claims


def compute_commitment(
    run_dir: str | os.PathLike[str],
) -> tuple[Digest, dict[str, str], list[dict[str, Any]]]:
    """Recompute `(root, parts, claims)` from the files of a transcript."""
    paths = TranscriptPaths(run_dir)
    try:
        manifest = json.loads(paths.manifest.read_bytes())
        code = paths.program.read_bytes()
    except (OSError, ValueError) as e:
        msg = f"transcript {paths.root}: manifest or code unreadable ({e})"
        raise FormatError(msg) from e
    if str(program_code_hash(code)) != manifest["program"]["code_hash"]:
        msg = "transcript code/program.py: its hash differs from the manifest's code_hash"
        raise IntegrityError(msg)
    roots = []
    for i, rec in enumerate(read_lines(paths.steps)):
        if rec.get("step") != i:
            got = rec.get("step")
            msg = f"transcript data/steps.jsonl line {i + 1}: expected step {i}, got {got}"
            raise FormatError(msg)
        points = [Digest.parse("sha256:" + h) for h in rec["points"]]
        root = batch_root(points)
        if str(root) != rec["batch_root"]:
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
        "claims": str(json_digest(claims)),
    }
    for rec in read_lines(paths.checkpoint_index):
        parts[f"checkpoint/{rec['step']:08d}"] = str(file_digest(paths.root / rec["file"]))
    return commitment_root(parts), parts, claims
