"""The typed transcript files: what the recorder writes is exactly what the parsers read.

Property tests (hypothesis) round-trip every type through its writer,
``parse(json.loads(encode(x))) == x``; the recorder's own files parse; a
chip file or checkpoint index with a wrong-typed or hostile field is a
`FormatError` naming the file and the field.
"""

from __future__ import annotations

import json
import re
import string
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch.chip import Chip, sign_firmware
from computewatch.datacenter import (
    REPORT_FORMAT,
    CheckpointRef,
    ChipClaims,
    ChipSnapshot,
    ClaimRecord,
    DataSchedule,
    Determinism,
    FlatLayout,
    IndexRecord,
    Manifest,
    MetricsRecord,
    ProverReport,
    StepRecord,
    TranscriptPaths,
    compute_commitment,
    encode,
    read_index,
    read_manifest,
    train,
)
from computewatch.errors import FormatError
from tests.datacenter.conftest import SteppingClock, make_spec

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.crypto import SigningKey

U63 = st.integers(0, 2**63 - 1)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
DIGEST = st.builds(lambda a, h: f"{a}:{h}", st.sampled_from(["sha256", "blake3"]), HEX64)
NAME = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
SPAN = st.tuples(U63, U63).map(sorted).map(tuple)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | FINITE | NAME,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAME, inner, max_size=3),
    max_leaves=8,
)

CLAIM = st.builds(ClaimRecord, serial=NAME, seq=U63, step=U63, h=DIGEST, slice=SPAN, run_id=NAME)
CHIP_SNAPSHOT = st.builds(ChipSnapshot, seq=U63, step=U63, h=DIGEST, time_us=U63, file=NAME)


def _roundtrip(record: Any, where: str = "file.json") -> Any:
    """Parse what `encode` wrote, with the record type's own parser."""
    doc = json.loads(encode(record))
    assert doc == record.to_dict()
    return type(record).from_dict(doc, where)


@given(st.builds(StepRecord, step=U63, points=st.tuples(HEX64, HEX64), batch_root=DIGEST))
def test_step_record_roundtrip(rec: StepRecord) -> None:
    assert _roundtrip(rec) == rec


@given(
    st.builds(
        MetricsRecord,
        step=U63,
        loss=FINITE,
        lr=FINITE,
        update_norm=FINITE,
        grad_norm=FINITE,
        time=FINITE,
        seconds=FINITE,
    )
)
def test_metrics_record_roundtrip(rec: MetricsRecord) -> None:
    assert _roundtrip(rec) == rec


@given(st.builds(ChipClaims, serial=NAME, rank=U63, slice=SPAN, snapshots=st.tuples(CHIP_SNAPSHOT)))
def test_chip_claims_roundtrip(rec: ChipClaims) -> None:
    back = _roundtrip(rec, "chips/X.json")
    assert back == rec
    assert back.claims("run-1") == rec.claims("run-1")


@given(U63, DIGEST)
def test_index_record_roundtrip(step: int, digest: str) -> None:
    rec = IndexRecord(step, IndexRecord.file_for(step), digest)
    assert _roundtrip(rec, "checkpoints/index.jsonl line 1") == rec


@given(
    st.builds(
        ProverReport,
        format=st.just(REPORT_FORMAT),
        run_id=NAME,
        commitment=DIGEST,
        precommitment=DIGEST,
        code_hash=DIGEST,
        data_root=DIGEST,
        checkpoints=st.lists(st.builds(CheckpointRef, U63, DIGEST), max_size=3).map(tuple),
        snapshots=st.lists(CLAIM, max_size=3).map(tuple),
        manifest_digest=st.none() | DIGEST,
        batch_roots=st.none() | st.lists(DIGEST, max_size=3).map(tuple),
        steps=st.none() | U63,
        world_size=st.none() | U63,
        extra=st.dictionaries(NAME.map(lambda k: f"x-{k}"), JSON, max_size=3),
    )
)
def test_prover_report_roundtrip(rec: ProverReport) -> None:
    back = _roundtrip(rec, "report.json")
    assert back == rec
    assert back.extra == rec.extra  # `extra` is outside ==; unknown fields survive too


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """A manifest made of the real layout, schedule and determinism records."""
    shapes = draw(st.lists(st.lists(st.integers(1, 6), max_size=3), min_size=1, max_size=4))
    offsets, total = [], 0
    for shape in shapes:
        offsets.append(total)
        n = 1
        for d in shape:
            n *= d
        total += n
    names = tuple(f"p{i}" for i in range(len(shapes)))
    layout = FlatLayout(names, tuple(tuple(s) for s in shapes), tuple(offsets), total)
    size = draw(st.integers(1, 1 << 20))
    schedule = DataSchedule(size, draw(st.integers(1, size)), draw(st.integers(1, 1000)), 3)
    det = Determinism(
        draw(U63), draw(st.integers(1, 64)), draw(st.booleans()), tf32=False, torch_version="2.13.0"
    )
    world = draw(st.integers(1, 4))
    doc = {
        "format": "computewatch-transcript/v1",
        "run_id": draw(NAME),
        "program": {"name": "p", "file": "code/program.py", "code_hash": draw(DIGEST)},
        "config": draw(st.dictionaries(NAME, JSON, max_size=3)),
        "layout": layout.to_json(),
        "layout_digest": str(layout.digest()),
        "numel": layout.numel,
        "init": {"scheme": "cw-normal-v1", "std": draw(FINITE), "seed": "precommitment"},
        "data": schedule.to_json(),
        "determinism": det.to_json(),
        "sharding": {
            "kind": "flat-zero1",
            "world_size": world,
            "chips": [{"rank": r, "serial": f"CW-{r}", "slice": [0, total]} for r in range(world)],
        },
        "checkpoint_every": draw(st.integers(1, 100)),
    }
    return Manifest.from_dict(doc)


@settings(max_examples=50)
@given(manifests())
def test_manifest_roundtrip(manifest: Manifest) -> None:
    back = _roundtrip(manifest, "manifest.json")
    assert back == manifest
    assert back.to_dict() == manifest.to_dict()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TranscriptPaths:
    """A tiny recorded run naming chip CW-F-0 (its chip file is written by hand where needed)."""
    paths = TranscriptPaths(tmp_path_factory.mktemp("files") / "run")
    train(make_spec(steps=4), paths.root, chip_serials=["CW-F-0"])
    return paths


def test_recorded_files_parse_and_write_back_the_same_bytes(run: TranscriptPaths) -> None:
    manifest = read_manifest(run)
    assert encode(manifest) == run.manifest.read_bytes()
    report = ProverReport.from_dict(json.loads(run.report.read_bytes()))
    assert encode(report) == run.report.read_bytes()
    assert report.steps == 4  # a typed field, not an unknown one
    assert "steps" not in report.extra
    assert [e.step for e in read_index(run)] == [c.step for c in report.checkpoints]
    for path, parse in ((run.steps, StepRecord), (run.metrics, MetricsRecord)):
        lines = path.read_bytes().splitlines()
        assert len(lines) == 4
        for i, line in enumerate(lines):
            assert encode(parse.from_dict(json.loads(line), f"line {i}")) == line


def _copy(run: TranscriptPaths, tmp_path: Path) -> TranscriptPaths:
    import shutil  # noqa: PLC0415

    shutil.copytree(run.root, tmp_path / "run")
    return TranscriptPaths(tmp_path / "run")


def test_checkpoint_index_naming_a_file_outside_the_transcript_is_refused(
    run: TranscriptPaths, tmp_path: Path
) -> None:
    paths = _copy(run, tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not the transcript's")
    lines = paths.checkpoint_index.read_text().splitlines()
    doc = json.loads(lines[0])
    doc["file"] = str(outside)
    paths.checkpoint_index.write_text("\n".join([json.dumps(doc), *lines[1:]]) + "\n")
    with pytest.raises(FormatError, match=r"checkpoints/index.jsonl line 1: field 'file'"):
        compute_commitment(paths.root)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["snapshots"][0].update(seq="3"), "snapshots[0].seq"),
        (lambda d: d.update(slice=[5, 1]), "slice"),
        (lambda d: d["snapshots"][0].update(h=7), "snapshots[0].h"),
        (lambda d: d.pop("rank"), "rank"),
        (lambda d: d.update(snapshots={"0": 1}), "snapshots"),
    ],
)
def test_malformed_chip_file_names_file_and_field(
    run: TranscriptPaths, tmp_path: Path, edit: Any, field: str
) -> None:
    paths = _copy(run, tmp_path)
    manifest = json.loads(paths.manifest.read_bytes())
    serial = manifest["sharding"]["chips"][0]["serial"]
    doc: dict[str, Any] = {
        "serial": serial,
        "rank": 0,
        "slice": [0, 4],
        "snapshots": [
            {"seq": 3, "step": 1, "h": "sha256:" + "0" * 64, "time_us": 1, "file": "snapshots/x"}
        ],
    }
    edit(doc)
    paths.chips.mkdir(exist_ok=True)
    (paths.chips / f"{serial}.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=re.escape(f"chips/{serial}.json: field '{field}'")):
        compute_commitment(paths.root)


def test_recorded_chip_file_parses(tmp_path: Path, maker: SigningKey) -> None:
    # a dense schedule (about 20 snapshots a step on the stepping clock), so that 4 steps
    # always hold a snapshot: at one a chip-minute, 1 run in 15 drew none
    dense = sign_firmware(
        name="cw-fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400.0
    )
    chip = Chip.provision(tmp_path / "chip", "CW-DC-1", maker.verifying_key, clock=SteppingClock())
    chip.boot(dense)
    paths = TranscriptPaths(tmp_path / "run")
    try:
        train(make_spec(steps=4), paths.root, chip=chip)
    finally:
        chip.close()
    doc = ChipClaims.from_dict(
        json.loads((paths.chips / f"{chip.serial}.json").read_bytes()), "chip"
    )
    assert doc.snapshots
    assert encode(doc) == (paths.chips / f"{chip.serial}.json").read_bytes()
    report = ProverReport.from_dict(json.loads(paths.report.read_bytes()))
    assert report.snapshots == tuple(doc.claims(report.run_id))


@settings(max_examples=30)
@given(manifests(), st.sampled_from([0, -1, "2", True, None]))
def test_manifest_accumulation_is_declared_or_refused(manifest: Manifest, bad: object) -> None:
    """Accumulation (ADR 0032): absent is 1; declared, it must divide the per-chip batch."""
    assert manifest.accumulation == 1
    doc = manifest.to_dict()
    world = doc["sharding"]["world_size"]
    doc["data"] = {**doc["data"], "batch_size": 4 * world, "dataset_size": 4 * world}
    doc["sharding"] = {**doc["sharding"], "accumulation": 4}
    declared = Manifest.from_dict(doc)
    assert declared.accumulation == 4
    assert _roundtrip(declared, "manifest.json") == declared
    doc["sharding"]["accumulation"] = 3  # 4 points per chip do not split in 3
    with pytest.raises(FormatError, match=r"field 'sharding.accumulation': expected a divisor"):
        Manifest.from_dict(doc)
    doc["sharding"]["accumulation"] = bad
    with pytest.raises(FormatError, match=r"field 'sharding.accumulation'"):
        Manifest.from_dict(doc)
