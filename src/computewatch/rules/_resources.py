"""The classifiers and benchmarks a rule file declares, and the resources they reference.

A rule on ``data.<name>`` needs a classifier called ``<name>``; a rule on
``benchmarks.<name>`` needs a benchmark called ``<name>``. The rule file
names them, so the trusted cluster runs what the regime agreed, never a
classifier picked by a code path::

    classifiers:
      - name: exploit_code
        kind: exploit-code             # the built-in heuristic (ExploitCodeClassifier)
      - name: shell_spawn
        kind: patterns                 # flags a point containing any listed byte string
        file: shell-spawn.patterns     # relative to the rule file, one pattern per line
        sha256: "<hex digest of the file>"   # pinned: a changed resource is refused
    benchmarks:
      - name: bits_per_byte
        kind: held-out-bits-per-byte   # the program's own last 64 points
        points: 64
      - name: heldout_text_bpb
        kind: file-bits-per-byte       # a held-out file, cut into data-point windows
        file: heldout.txt              # relative to the rule file, pinned like any resource
        sha256: "<hex digest of the file>"
        points: 256

A referenced resource is read once, when the rule file is loaded, bounded
(1 MiB; patterns: 10,000 of at most 200 bytes) and must hash to its pinned
digest (`IntegrityError` otherwise: the file the regime agreed on was
changed); a missing one or an unknown kind is a `FormatError`. The
trusted cluster hands a benchmark's bytes to the replay worker as a staged
job input (ADR 0025), never a path.

Example:
    >>> from computewatch.rules import load_rules
    >>> rs = load_rules('''
    ... version: 1
    ... name: r
    ... classifiers: [{name: exploit_code, kind: exploit-code}]
    ... rules: [{id: a, kind: ban, when: "data.exploit_code.upper > 0.05"}]
    ... ''')
    >>> [c.name for c in rs.make_classifiers()]
    ['exploit_code']
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError, IntegrityError
from computewatch.rules._benchmarks import (
    BENCHMARK_KINDS,
    FileBitsPerByte,
    HeldOutBitsPerByte,
    make_benchmark,
)
from computewatch.rules._estimate import ExploitCodeClassifier

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BenchmarkSpec",
    "ClassifierSpec",
    "PatternClassifier",
    "parse_benchmarks",
    "parse_classifiers",
]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_MAX_SPECS = 32
_MAX_RESOURCE = 1 << 20
_MAX_PATTERNS = 10_000
_MAX_PATTERN = 200
CLASSIFIER_KINDS = ("exploit-code", "patterns")


class PatternClassifier:
    """Flags a data point that contains any of a list of byte strings (case-sensitive)."""

    def __init__(self, name: str, patterns: tuple[bytes, ...]) -> None:
        """A classifier called `name` over non-empty `patterns`."""
        self.name = name
        self.patterns = patterns

    def flags(self, point: bytes) -> bool:
        """Whether `point` contains a pattern."""
        return any(p in point for p in self.patterns)


@dataclass(frozen=True)
class ClassifierSpec:
    """A declared classifier: its fact name, kind and (for ``patterns``) its patterns."""

    name: str
    kind: str
    patterns: tuple[bytes, ...] = ()

    def make(self) -> ExploitCodeClassifier | PatternClassifier:
        """The classifier object."""
        if self.kind == "exploit-code":
            c = ExploitCodeClassifier()
            c.name = self.name
            return c
        return PatternClassifier(self.name, self.patterns)


@dataclass(frozen=True)
class BenchmarkSpec:
    """A declared benchmark: its score's name, kind, parameters and resource.

    Attributes:
        name: the score's name (``benchmarks.<name>``).
        kind: one of `BENCHMARK_KINDS`.
        points: most points (or windows) scored.
        data: the referenced resource's bytes (read once, digest checked),
            or None for a kind without one.
        sha256: the resource's pinned digest.
        file: the resource's path as the rule file names it (for messages).
    """

    name: str
    kind: str
    points: int = 64
    data: bytes | None = field(default=None, repr=False)
    sha256: str = ""
    file: str = ""

    def make(self) -> HeldOutBitsPerByte | FileBitsPerByte:
        """The benchmark object."""
        return make_benchmark(self.kind, self.name, points=self.points, data=self.data)

    def to_job(self, staged: str | None) -> dict[str, Any]:
        """What a replay worker is told (`staged`: the resource's file name in the job)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "points": self.points,
            "file": staged,
            "sha256": self.sha256,
        }


def _items(where: str, field: str, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > _MAX_SPECS:
        msg = f"{where} field {field!r}: expected a list of at most {_MAX_SPECS} entries"
        raise FormatError(msg)
    names = set()
    for n, item in enumerate(value, 1):
        if not isinstance(item, dict):
            msg = f"{where} {field} #{n}: expected a mapping"
            raise FormatError(msg)
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
            msg = f"{where} {field} #{n} name: expected a new identifier, got {name!r:.60}"
            raise FormatError(msg)
        names.add(name)
    return value


def _only(at: str, item: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(str(k) for k in set(item) - allowed)
    if extra:
        msg = f"{at}: unknown keys {extra}; expected {sorted(allowed)}"
        raise FormatError(msg)


def _resource(at: str, item: dict[str, Any], base: Path | None) -> bytes:
    """The bytes of the file `item` references, checked against its pinned sha256."""
    file, pinned = item.get("file"), item.get("sha256")
    if base is None:
        msg = f"{at}: a resource file needs a rule file on disk (rules given as text)"
        raise FormatError(msg)
    if not isinstance(file, str) or not file or file.startswith("/") or ".." in file.split("/"):
        msg = f"{at} file: expected a path relative to the rule file, got {file!r:.80}"
        raise FormatError(msg)
    if not isinstance(pinned, str) or not re.fullmatch(r"[0-9a-f]{64}", pinned):
        msg = f"{at} sha256: expected the resource's 64 hex digit digest, got {pinned!r:.80}"
        raise FormatError(msg)
    path = base / file
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_RESOURCE + 1)
    except OSError as e:
        msg = f"{at} file {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if len(data) > _MAX_RESOURCE:
        msg = f"{at} file {path}: larger than {_MAX_RESOURCE} bytes"
        raise FormatError(msg)
    got = hashlib.sha256(data).hexdigest()
    if got != pinned:
        msg = f"{at} file {path}: sha256 mismatch (expected {pinned[:12]}…, got {got[:12]}…)"
        raise IntegrityError(msg)
    return data


def _patterns(at: str, item: dict[str, Any], base: Path | None) -> tuple[bytes, ...]:
    _only(at, item, {"name", "kind", "file", "sha256"})
    data = _resource(at, item, base)
    path = base / str(item["file"]) if base is not None else item["file"]
    patterns = tuple(line for line in data.split(b"\n") if line)
    if not patterns or len(patterns) > _MAX_PATTERNS:
        msg = f"{at} file {path}: expected 1 to {_MAX_PATTERNS} patterns, got {len(patterns)}"
        raise FormatError(msg)
    if max(len(p) for p in patterns) > _MAX_PATTERN:
        msg = f"{at} file {path}: a pattern is longer than {_MAX_PATTERN} bytes"
        raise FormatError(msg)
    return patterns


def parse_classifiers(where: str, value: object, base: Path | None) -> tuple[ClassifierSpec, ...]:
    """The ``classifiers`` section (`base`: the rule file's folder, None for text)."""
    out = []
    for item in _items(where, "classifiers", value):
        at = f"{where} classifier {item['name']!r}"
        kind = item.get("kind")
        if kind not in CLASSIFIER_KINDS:
            msg = f"{at} kind: expected one of {', '.join(CLASSIFIER_KINDS)}, got {kind!r:.60}"
            raise FormatError(msg)
        if kind == "patterns":
            out.append(ClassifierSpec(item["name"], kind, _patterns(at, item, base)))
        else:
            _only(at, item, {"name", "kind"})
            out.append(ClassifierSpec(item["name"], kind))
    return tuple(out)


def parse_benchmarks(
    where: str, value: object, base: Path | None = None
) -> tuple[BenchmarkSpec, ...]:
    """The ``benchmarks`` section (`base`: the rule file's folder, None for text)."""
    out = []
    for item in _items(where, "benchmarks", value):
        at = f"{where} benchmark {item['name']!r}"
        kind = item.get("kind")
        if kind not in BENCHMARK_KINDS:
            msg = f"{at} kind: expected one of {', '.join(BENCHMARK_KINDS)}, got {kind!r:.60}"
            raise FormatError(msg)
        with_file = kind == "file-bits-per-byte"
        keys = {"name", "kind", "points"} | ({"file", "sha256"} if with_file else set())
        _only(at, item, keys)
        default = 256 if with_file else 64
        points = item.get("points", default)
        if not isinstance(points, int) or isinstance(points, bool) or not 1 <= points <= 1 << 20:
            msg = f"{at} points: expected an integer from 1 to {1 << 20}, got {points!r:.40}"
            raise FormatError(msg)
        if with_file:
            data = _resource(at, item, base)
            out.append(
                BenchmarkSpec(item["name"], kind, points, data, item["sha256"], item["file"])
            )
        else:
            out.append(BenchmarkSpec(item["name"], kind, points))
    return tuple(out)
