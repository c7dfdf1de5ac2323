"""The audit folder: one file per step, readable by a person, rewritten by a rerun.

Layout (all JSON is written with sorted keys and relative paths, so the
same inputs and nonces give the same bytes)::

    plan.json                 the plan: period, registry, parties, sample sizes
    verifier/nonce            the Verifier's secret nonce (hex, 0600) until revealed
    verifier/commitment.json  its logged commitment (index, receipt)
    verifier/reveal.json      its logged reveal (index, receipt)
    checkpoint.txt            the registry checkpoint that starts the period (signed note)
    checkpoints.db            the newest registry checkpoint each step accepted (SQLite)
    sample/PROVER.json        the draw: commitments, reveals, holdings, sample
    inspect/PROVER.json       each sampled chip's inspection
    verify/PROVER.json        run -> signed verdict file, the report's commitment
    verdicts/PROVER/RUN.json  the trusted cluster's signed verdicts
    rules/PROVER.json         the checked verdicts and their rules
    report/audit.{json,md,html}, report/detection.png

A Prover's submission is ``SUBMISSIONS/PROVER/submission.json``::

    {"prover": "lab-a", "chips": {"CW-A000": "chips/CW-A000"},
     "runs": {"run-1": {"transcript": "runs/run-1"}},
     "declared": {"run-1": {"reported": false, "approvals": []}}}

(paths relative to the file; the report is ``TRANSCRIPT/report.json``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["AuditFolder", "Submission", "read_json", "write_json"]

_MAX_JSON = 64 << 20
_MAX_ITEMS = 10_000
_NAME = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object file (bounded); `FormatError` naming the file otherwise."""
    try:
        if path.stat().st_size > _MAX_JSON:
            msg = f"{what} {path}: larger than {_MAX_JSON} bytes"
            raise FormatError(msg)
        doc = json.loads(path.read_bytes())
    except OSError as e:
        msg = f"{what} {path}: cannot read ({e.strerror}); run the step that writes it first"
        raise FormatError(msg) from e
    except ValueError as e:
        msg = f"{what} {path}: not JSON ({e})"
        raise FormatError(msg) from e
    if not isinstance(doc, dict):
        msg = f"{what} {path}: expected a JSON object"
        raise FormatError(msg)
    return doc


def write_json(path: Path, doc: dict[str, Any], *, private: bool = False) -> None:
    """Write `doc` as sorted, indented JSON (byte-stable), replacing `path` atomically."""
    data = (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    write_bytes(path, data, private=private)


def write_bytes(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(path)
    except OSError as e:
        msg = f"audit file {path}: cannot write ({e.strerror})"
        raise FormatError(msg) from e


@dataclass(frozen=True)
class AuditFolder:
    """Paths inside one audit folder."""

    root: Path

    @property
    def plan(self) -> Path:
        """``plan.json``."""
        return self.root / "plan.json"

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.txt``: the period's committed checkpoint."""
        return self.root / "checkpoint.txt"

    @property
    def trust_state(self) -> Path:
        """``checkpoints.db``: the newest registry checkpoint accepted (`TrustedCheckpoints`)."""
        return self.root / "checkpoints.db"

    def verifier(self, name: str) -> Path:
        """``verifier/NAME``."""
        return self.root / "verifier" / name

    def step(self, step: str, prover: str) -> Path:
        """``STEP/PROVER.json``."""
        return self.root / step / f"{_name(prover, 'prover')}.json"

    def verdict(self, prover: str, run: str) -> Path:
        """``verdicts/PROVER/RUN.json``."""
        return self.root / "verdicts" / _name(prover, "prover") / f"{_name(run)}.json"

    @property
    def report(self) -> Path:
        """``report/``."""
        return self.root / "report"

    def relative(self, path: Path) -> str:
        """`path` relative to the folder (for byte-stable records)."""
        return os.path.relpath(path, self.root)


def _name(value: object, what: str = "run id") -> str:
    """A name that is safe as one path component."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        msg = f"{what} {value!r:.60}: expected 1-128 of [A-Za-z0-9._:-], not starting with '.'"
        raise FormatError(msg)
    return value


@dataclass(frozen=True)
class Submission:
    """A Prover's submission on disk (see the module docs)."""

    prover: str
    chips: dict[str, Path]
    runs: dict[str, Path]
    declared: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, folder: Path, prover: str) -> Submission:
        """Read ``folder/PROVER/submission.json``.

        Raises:
            FormatError: Missing, malformed, or for another Prover.
        """
        path = folder / _name(prover, "prover") / "submission.json"
        doc = read_json(path, "submission")
        base = path.parent
        where = f"submission {path}"
        if doc.get("prover") != prover:
            msg = f"{where}: expected prover {prover!r}, got {doc.get('prover')!r:.60}"
            raise FormatError(msg)
        chips, runs, declared = doc.get("chips", {}), doc.get("runs", {}), doc.get("declared", {})
        if not all(isinstance(x, dict) and len(x) <= _MAX_ITEMS for x in (chips, runs, declared)):
            msg = f"{where}: chips, runs and declared must be objects of at most {_MAX_ITEMS}"
            raise FormatError(msg)
        try:
            return cls(
                prover=prover,
                chips={str(s): base / str(p) for s, p in chips.items()},
                runs={_name(r): base / str(v["transcript"]) for r, v in runs.items()},
                declared={
                    str(r): {"reported": bool(d["reported"]), "approvals": list(d["approvals"])}
                    for r, d in declared.items()
                },
            )
        except (KeyError, TypeError) as e:
            msg = f"{where}: malformed entry ({e!r:.80})"
            raise FormatError(msg) from e
