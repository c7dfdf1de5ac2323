"""Malformed Prover files: every mutation is a failing verdict naming the file and field.

Each example changes one field of the manifest, the report, a metrics
record or a snapshot claim into a value of another JSON type (or a
non-finite number) and runs `verify_transcript`: it must return a failing
verdict (never raise) whose failure names the file and the field. The
checks happen while the transcript is opened, before any replay.
"""

from __future__ import annotations

import json
import math
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from computewatch.datacenter import TranscriptPaths
from computewatch.verification import verify_transcript
from tests.verification.conftest import Run, run_on_chip

if TYPE_CHECKING:
    from pathlib import Path

Path_ = tuple[str | int, ...]

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _kind(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _paths(doc: object, prefix: Path_ = (), skip: frozenset[str] = frozenset()) -> list[Path_]:
    out: list[Path_] = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k not in skip:
                out += _paths(v, (*prefix, k))
    elif isinstance(doc, list) and doc:
        out += _paths(doc[0], (*prefix, 0))
    return out


def _set(doc: Any, path: Path_, value: object) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_on_chip(tmp_path_factory.mktemp("malformed"), steps=12, checkpoint_every=6)


def _check(run: Run, where: str, key: str, report: Any = None) -> None:
    paths = TranscriptPaths(run.run_dir)
    rep = report if report is not None else json.loads(paths.report.read_text())
    verdict = verify_transcript(run.run_dir, rep, run.evidence(), rng=np.random.default_rng(0))
    assert not verdict.passed
    details = " | ".join(c.detail for c in verdict.failures)
    assert where in details, details
    assert key in details, details


def _mutant(original: object, value: object) -> bool:
    if _kind(value) != _kind(original):
        return True
    return isinstance(value, float) and not math.isfinite(value)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_report_fields(run: Run, data: st.DataObject) -> None:
    report = json.loads(TranscriptPaths(run.run_dir).report.read_text())
    path = data.draw(st.sampled_from(_paths(report)))
    value = data.draw(_VALUES.filter(lambda v: _mutant(_get(report, path), v)))
    _check(run, "report.json", str(path[0]), _set(report, path, value))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_snapshot_claims(run: Run, data: st.DataObject) -> None:
    report = json.loads(TranscriptPaths(run.run_dir).report.read_text())
    assert report["snapshots"], "the run must have claims"
    i = data.draw(st.integers(0, len(report["snapshots"]) - 1))
    key = data.draw(st.sampled_from(sorted(report["snapshots"][i])))
    value = data.draw(_VALUES.filter(lambda v: _mutant(report["snapshots"][i][key], v)))
    _check(run, "report.json", f"snapshots[{i}].{key}", _set(report, ("snapshots", i, key), value))


def _with_file(run: Run, file: Path, text: str, where: str, key: str) -> None:
    backup = file.with_suffix(".orig")
    shutil.copyfile(file, backup)
    try:
        file.write_text(text)
        _check(run, where, key)
    finally:
        backup.replace(file)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_manifest_fields(run: Run, data: st.DataObject) -> None:
    file = TranscriptPaths(run.run_dir).manifest
    manifest = json.loads(file.read_text())
    path = data.draw(st.sampled_from(_paths(manifest, skip=frozenset({"config"}))))
    value = data.draw(_VALUES.filter(lambda v: _mutant(_get(manifest, path), v)))
    _with_file(run, file, json.dumps(_set(manifest, path, value)), "manifest.json", str(path[0]))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_metrics_records(run: Run, data: st.DataObject) -> None:
    file = TranscriptPaths(run.run_dir).metrics
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    i = data.draw(st.integers(0, len(lines) - 1))
    key = data.draw(st.sampled_from(sorted(lines[i])))
    value = data.draw(_VALUES.filter(lambda v: _mutant(lines[i][key], v)))
    lines[i] = _set(lines[i], (key,), value)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    _with_file(run, file, text, f"metrics.jsonl line {i + 1}", key)


def test_a_checkpoint_linked_to_an_endless_file_is_refused(run: Run, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run.run_dir, copy)
    ckpt = TranscriptPaths(copy).checkpoint(6)
    ckpt.unlink()
    ckpt.symlink_to("/dev/zero")
    linked = Run(copy, run.chip, run.maker)
    _check(linked, "checkpoints/step-", "symbolic link")


def test_a_fifo_in_the_transcript_is_refused(run: Run, tmp_path: Path) -> None:
    import os  # noqa: PLC0415

    copy = tmp_path / "run"
    shutil.copytree(run.run_dir, copy)
    metrics = TranscriptPaths(copy).metrics
    metrics.unlink()
    os.mkfifo(metrics)
    _check(Run(copy, run.chip, run.maker), "metrics.jsonl", "not a regular file")
