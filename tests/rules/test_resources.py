"""Classifiers and benchmarks come from the rule file and the resources it pins."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from computewatch.errors import FormatError, IntegrityError
from computewatch.rules import (
    ExploitCodeClassifier,
    FileBitsPerByte,
    HeldOutBitsPerByte,
    PatternClassifier,
    estimate_property,
    load_rules,
)

if TYPE_CHECKING:
    from pathlib import Path

RULE = 'rules: [{id: a, kind: ban, when: "data.shell_spawn.upper > 0.05"}]\n'


def _file(tmp_path: Path, sections: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\nname: r\n{sections}{RULE}")
    return path


def test_a_patterns_classifier_is_built_from_its_pinned_file(tmp_path: Path) -> None:
    data = b"/bin/sh\nos.system(\n"
    (tmp_path / "shell.patterns").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    rs = load_rules(
        _file(
            tmp_path,
            "classifiers:\n"
            f"  - {{name: shell_spawn, kind: patterns, file: shell.patterns, sha256: '{digest}'}}\n"
            "  - {name: exploit_code, kind: exploit-code}\n"
            "benchmarks: [{name: bpb, kind: held-out-bits-per-byte, points: 8}]\n",
        )
    )
    shell, exploit = rs.make_classifiers()
    assert isinstance(shell, PatternClassifier)
    assert shell.name == "shell_spawn"
    assert isinstance(exploit, ExploitCodeClassifier)
    est = estimate_property([b"run /bin/sh now", b"print(1)", b"x = os.system("], shell)
    assert est.flagged == 2
    (bench,) = rs.make_benchmarks()
    assert isinstance(bench, HeldOutBitsPerByte)
    assert (bench.name, bench.points) == ("bpb", 8)


def test_a_changed_resource_is_refused_as_tampering(tmp_path: Path) -> None:
    (tmp_path / "shell.patterns").write_bytes(b"/bin/sh\n")
    pinned = hashlib.sha256(b"something else").hexdigest()
    path = _file(
        tmp_path,
        f"classifiers: [{{name: shell_spawn, kind: patterns, file: shell.patterns, "
        f"sha256: '{pinned}'}}]\n",
    )
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_rules(path)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ("classifiers: [{name: x, kind: magic}]\n", "kind: expected one of"),
        ("classifiers: [{name: x, kind: exploit-code}, {name: x, kind: exploit-code}]\n", "new"),
        (
            "classifiers: [{name: x, kind: patterns, file: ../etc/passwd, sha256: '0'}]\n",
            "relative",
        ),
        ("classifiers: [{name: x, kind: exploit-code, code: 'import os'}]\n", "unknown keys"),
        ("benchmarks: [{name: b, kind: held-out-bits-per-byte, points: 0}]\n", "points"),
        ("benchmarks: {name: b}\n", "expected a list"),
        ("benchmarks: [{name: b, kind: mmlu}]\n", "kind: expected one of held-out-bits"),
        ("benchmarks: [{name: b, kind: file-bits-per-byte}]\n", "file: expected a path"),
        (
            "benchmarks: [{name: b, kind: file-bits-per-byte, file: gone.txt, sha256: '"
            + "0" * 64
            + "'}]\n",
            "gone.txt: cannot read",
        ),
        ("benchmarks: [{name: b, kind: held-out-bits-per-byte, file: x}]\n", "unknown keys"),
    ],
)
def test_malformed_declarations_are_refused(tmp_path: Path, section: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        load_rules(_file(tmp_path, section))


def test_a_resource_needs_a_rule_file_on_disk() -> None:
    text = (
        "version: 1\nname: r\n"
        "classifiers: [{name: x, kind: patterns, file: a.patterns, sha256: '"
        + "0" * 64
        + "'}]\n"
        + RULE
    )
    with pytest.raises(FormatError, match="rule file on disk"):
        load_rules(text)


def test_the_demo_rule_file_declares_its_classifier_and_benchmark() -> None:
    from pathlib import Path  # noqa: PLC0415

    rs = load_rules(Path(__file__).resolve().parents[2] / "examples" / "rules.yaml")
    assert [c.name for c in rs.make_classifiers()] == ["exploit_code"]
    assert [b.name for b in rs.make_benchmarks()] == ["bits_per_byte", "heldout_text_bpb"]
    held_out = rs.benchmarks[1]
    assert held_out.kind == "file-bits-per-byte"
    assert held_out.data is not None
    assert hashlib.sha256(held_out.data).hexdigest() == held_out.sha256


def test_a_file_benchmark_carries_its_pinned_bytes(tmp_path: Path) -> None:
    data = b"held out text, never trained on\n" * 4
    (tmp_path / "h.txt").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    rs = load_rules(
        _file(
            tmp_path,
            f"benchmarks: [{{name: h, kind: file-bits-per-byte, file: h.txt, sha256: '{digest}',"
            " points: 3}]\n",
        )
    )
    (spec,) = rs.benchmarks
    assert (spec.data, spec.sha256, spec.points) == (data, digest, 3)
    (bench,) = rs.make_benchmarks()
    assert isinstance(bench, FileBitsPerByte)
    assert (bench.name, bench.data, bench.points) == ("h", data, 3)
    assert spec.to_job("bench-0.bin") == {
        "name": "h", "kind": "file-bits-per-byte", "points": 3, "file": "bench-0.bin",
        "sha256": digest,
    }  # fmt: skip
    (tmp_path / "h.txt").write_bytes(data + b"!")
    with pytest.raises(IntegrityError, match=r"benchmark 'h' file .* sha256 mismatch"):
        load_rules(tmp_path / "rules.yaml")
