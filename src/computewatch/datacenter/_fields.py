"""Field readers over one JSON object of a Prover's file, naming file and field.

`Doc` wraps a parsed JSON object and reads typed fields from it; every
error is a `FormatError` of the form ``report.json: field 'snapshots[2].seq':
expected int, got str``. The transcript file types (`_files.py`) are built
on it.

Example::

    >>> Doc({"step": 3}, "metrics.jsonl line 1").integer("step")
    3
    >>> Doc({"step": True}, "metrics.jsonl line 1").integer("step")
    Traceback (most recent call last):
    ...
    computewatch.errors.FormatError: metrics.jsonl line 1: field 'step': expected int, got bool
"""

from __future__ import annotations

import math
from typing import Any

from computewatch.errors import FormatError

__all__ = ["HEX", "Doc"]

HEX = frozenset("0123456789abcdef")


class Doc:
    """Field readers over one JSON object, naming `where` in every error."""

    def __init__(self, doc: object, where: str, prefix: str = "") -> None:
        if not isinstance(doc, dict):
            name = f"field {prefix!r}" if prefix else "document"
            msg = f"{where}: {name}: expected a JSON object, got {type(doc).__name__}"
            raise FormatError(msg)
        self.doc: dict[str, Any] = doc
        self.where = where
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, expected: str, value: object) -> FormatError:
        got = type(value).__name__ if not isinstance(value, int | float) else repr(value)
        if isinstance(value, bool):
            got = "bool"
        return FormatError(
            f"{self.where}: field {self._name(key)!r}: expected {expected}, got {got}"
        )

    def get(self, key: str) -> Any:
        if key not in self.doc:
            msg = f"{self.where}: field {self._name(key)!r}: missing"
            raise FormatError(msg)
        return self.doc[key]

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.fail(key, "str", value)
        return value

    def digest(self, key: str) -> str:
        value = self.text(key)
        algo, _, hexpart = value.partition(":")
        if algo not in {"sha256", "blake3"} or len(hexpart) != 64 or not set(hexpart) <= HEX:  # noqa: PLR2004
            raise self.fail(key, "a digest 'sha256:<64 hex>'", value[:40])
        return value

    def integer(self, key: str, low: int = 0, high: int = 2**63 - 1) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "int", value)
        if not low <= value <= high:
            raise self.fail(key, f"an int in [{low}, {high}]", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, "bool", value)
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number", value)
        if not math.isfinite(value):
            raise self.fail(key, "a finite number", value)
        return float(value)

    def array(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        return value

    def obj(self, key: str) -> Doc:
        return Doc(self.get(key), self.where, self._name(key))

    def span(self, key: str) -> tuple[int, int]:
        value = self.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 2  # noqa: PLR2004
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or not 0 <= value[0] <= value[1]
        ):
            raise self.fail(key, "[start, stop] with 0 <= start <= stop", value)
        return int(value[0]), int(value[1])

    def items(self, key: str) -> list[Doc]:
        return [
            Doc(v, self.where, f"{self._name(key)}[{i}]") for i, v in enumerate(self.array(key))
        ]
