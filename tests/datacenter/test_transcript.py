"""Recording transcripts: contents, W_0, resume equivalence, commitment, robustness."""

from __future__ import annotations

import itertools
import json
import os
from typing import TYPE_CHECKING

import pytest
import torch
from safetensors.torch import load_file

from computewatch.chip import Chip, read_chip_log, verify_chip_log
from computewatch.crypto import Digest, shard_hash
from computewatch.datacenter import (
    FlatLayout,
    StorageError,
    TranscriptPaths,
    derive_init_seed,
    init_flat,
    load_checkpoint,
    precommitment,
    shard_range,
    train,
)
from computewatch.errors import FormatError, IntegrityError
from tests.datacenter.conftest import make_spec

if TYPE_CHECKING:
    from pathlib import Path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_transcript_contents(tmp_path: Path, chip: Chip) -> None:
    spec = make_spec()
    summary = train(spec, tmp_path / "run", chip=chip)
    assert summary.steps_done == 24
    assert summary.losses[-1] < summary.losses[0]
    paths = TranscriptPaths(tmp_path / "run")
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["config"]["lr"] == 3e-3
    assert manifest["checkpoint_every"] == 6
    assert manifest["determinism"]["threads"] == 1
    assert manifest["sharding"]["chips"][0]["serial"] == "CW-DC-0"
    assert paths.program.read_bytes() == spec.program_path.read_bytes()
    steps = _lines(paths.steps)
    assert [s["step"] for s in steps] == list(range(24))
    assert all(len(s["points"]) == 8 for s in steps)  # type: ignore[arg-type]
    metrics = _lines(paths.metrics)
    assert {"loss", "lr", "update_norm", "grad_norm", "time", "seconds"} <= set(metrics[0])
    index = _lines(paths.checkpoint_index)
    assert [c["step"] for c in index] == [0, 6, 12, 18, 24]
    report = summary.report
    assert report is not None
    assert report["commitment"] == json.loads(paths.commitment.read_text())["root"]
    # the report holds hashes only: no weights, data or hyperparameters
    flat = json.dumps(report)
    assert "lr" not in report
    assert "config" not in report
    assert "3e-03" not in flat
    assert "0.003" not in flat
    # the precommitment was logged on the chip before the first snapshot
    entries = verify_chip_log(read_chip_log(chip.log_path), chip.public_key, "CW-DC-0")
    pre = [e for e in entries if e.kind == "precommit"]
    snaps = [e for e in entries if e.kind == "snapshot"]
    assert pre[0].body["commitment"] == report["precommitment"]
    assert snaps
    assert pre[0].seq < snaps[0].seq
    assert len(report["snapshots"]) == len(snaps)


def test_snapshots_are_the_chips_slice_at_that_step(tmp_path: Path, chip: Chip) -> None:
    spec = make_spec(checkpoint_every=1)  # a checkpoint after every step
    report = train(spec, tmp_path / "run", chip=chip).report
    assert report is not None
    paths = TranscriptPaths(tmp_path / "run")
    for claim in report["snapshots"]:
        omega = load_file(
            str(tmp_path / "run" / f"snapshots/{claim['serial']}-{claim['seq']:08d}.safetensors")
        )["omega"]
        assert str(shard_hash(omega)) == claim["h"]
        ckpt = load_checkpoint(paths.checkpoint(claim["step"]))
        a, b = claim["slice"]
        assert torch.equal(ckpt.weights[a:b], omega)


def test_initial_weights_regenerate_exactly_from_the_seed(tmp_path: Path) -> None:
    spec = make_spec()
    report = train(spec, tmp_path / "run").report
    assert report is not None
    paths = TranscriptPaths(tmp_path / "run")
    manifest = json.loads(paths.manifest.read_text())
    layout = FlatLayout.from_json(manifest["layout"])
    seed = derive_init_seed(Digest.parse(report["precommitment"]))
    w0 = load_checkpoint(paths.checkpoint(0)).weights
    assert torch.equal(init_flat(layout, seed), w0)
    assert not torch.equal(init_flat(layout, seed + 1), w0)


def test_precommitment_binds_manifest_and_data_order() -> None:
    a = Digest.parse("sha256:" + "11" * 32)
    b = Digest.parse("sha256:" + "22" * 32)
    assert precommitment(a, b) != precommitment(b, a)
    assert derive_init_seed(precommitment(a, b)) != derive_init_seed(precommitment(a, a))


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path: Path) -> None:
    spec = make_spec()
    full = train(spec, tmp_path / "full")
    part = train(spec, tmp_path / "cut", stop_after=9)  # "killed" after step 9
    assert part.steps_done == 9
    assert part.report is None
    resumed = train(spec, tmp_path / "cut", resume=True)
    assert resumed.steps_done == 24
    # resumed from the step-6 checkpoint: steps 6.. are re-run identically
    assert resumed.losses == full.losses[6:]
    for step in (12, 18, 24):
        a = load_checkpoint(TranscriptPaths(tmp_path / "full").checkpoint(step))
        b = load_checkpoint(TranscriptPaths(tmp_path / "cut").checkpoint(step))
        assert torch.equal(a.weights, b.weights)
        for k in a.optimizer_state:
            assert torch.equal(a.optimizer_state[k], b.optimizer_state[k])
    assert full.report is not None
    assert resumed.report is not None
    # checkpoint files are byte-identical (metrics differ: they carry wall times)
    assert full.report["checkpoints"] == resumed.report["checkpoints"]
    assert full.report["data_root"] == resumed.report["data_root"]
    assert (tmp_path / "full/data/steps.jsonl").read_bytes() == (
        tmp_path / "cut/data/steps.jsonl"
    ).read_bytes()


def test_resume_cuts_torn_lines(tmp_path: Path) -> None:
    spec = make_spec()
    train(spec, tmp_path / "run", stop_after=8)
    with (tmp_path / "run/metrics.jsonl").open("ab") as f:
        f.write(b'{"step": 8, "lo')  # killed mid-write
    resumed = train(spec, tmp_path / "run", resume=True)
    assert resumed.steps_done == 24
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(24))


def test_resume_refuses_a_different_spec(tmp_path: Path) -> None:
    train(make_spec(), tmp_path / "run", stop_after=7)
    with pytest.raises(IntegrityError, match="manifest differs"):
        train(make_spec(config={**make_spec().config, "lr": 1.0}), tmp_path / "run", resume=True)


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path: Path) -> None:
    train(make_spec(steps=6), tmp_path / "run")
    with pytest.raises(FormatError, match="already holds a transcript"):
        train(make_spec(steps=6), tmp_path / "run")
    with pytest.raises(FormatError, match="no readable manifest"):
        train(make_spec(), tmp_path / "empty", resume=True)


def test_tampered_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    train(make_spec(), tmp_path / "run", stop_after=8)
    ckpt = TranscriptPaths(tmp_path / "run").checkpoint(6)
    data = bytearray(ckpt.read_bytes())
    data[-5] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        train(make_spec(), tmp_path / "run", resume=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:  # pragma: no cover
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="cannot"):
            train(make_spec(steps=6), tmp_path / "run")
    finally:
        tmp_path.chmod(0o700)


def test_unwritable_target_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run folder should be")
    with pytest.raises(StorageError, match="cannot create"):
        train(make_spec(steps=6), blocker)


def test_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    from pathlib import Path as RealPath  # noqa: PLC0415

    from computewatch.datacenter._transcript import append_line, write_json_atomic  # noqa: PLC0415

    if not RealPath("/dev/full").exists():
        pytest.skip("no /dev/full")
    with pytest.raises(StorageError, match="No space left"):
        append_line(RealPath("/dev/full"), {"x": 1}, sync=True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write"):
        write_json_atomic(blocker / "x.json", {"x": 1})


def test_shard_ranges_cover_the_vector() -> None:
    for world in (1, 3, 4, 7):
        ranges = [shard_range(r, world, 100) for r in range(world)]
        assert ranges[0][0] == 0
        assert ranges[-1][1] == 100
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_commitment_changes_with_any_data_point_hyperparameter_or_checkpoint_byte(
    tmp_path: Path,
) -> None:
    from computewatch.datacenter import compute_commitment  # noqa: PLC0415

    run = tmp_path / "run"
    report = train(make_spec(steps=12), run).report
    assert report is not None
    root, _, _ = compute_commitment(run)
    assert str(root) == report["commitment"]
    paths = TranscriptPaths(run)

    def changed(path: Path, edit: object) -> None:
        original = path.read_bytes()
        path.write_bytes(edit(original))  # type: ignore[operator]
        try:
            try:
                new, _, _ = compute_commitment(run)
            except IntegrityError:
                return  # a change that is caught outright is a change too
            assert new != root, path.name
        finally:
            path.write_bytes(original)

    # a data point: its hash changes, so does its batch root
    def swap_point(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        rec = json.loads(lines[5])
        rec["points"][3] = "00" * 32
        from computewatch.crypto import canonical_json  # noqa: PLC0415
        from computewatch.datacenter import batch_root as br  # noqa: PLC0415

        rec["batch_root"] = str(br([Digest.parse("sha256:" + h) for h in rec["points"]]))
        lines[5] = canonical_json(rec) + b"\n"
        return b"".join(lines)

    changed(paths.steps, swap_point)
    # a hyperparameter
    changed(paths.manifest, lambda d: d.replace(b'"lr":0.003', b'"lr":0.004'))
    # any byte of a checkpoint
    ckpt = paths.checkpoint(6)
    size = ckpt.stat().st_size
    for pos in (0, 100, size // 2, size - 1):
        changed(ckpt, lambda d, pos=pos: d[:pos] + bytes([d[pos] ^ 1]) + d[pos + 1 :])
    assert compute_commitment(run)[0] == root
