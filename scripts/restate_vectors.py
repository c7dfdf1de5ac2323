"""Restate the published test vectors as the project's own fixture files.

The reference material is not part of the repository (a maintainer points
``--shared`` at a copy): the transparency-dev/merkle conformance probes for RFC 9162
inclusion and consistency proofs, the C2SP signed-note, tlog-checkpoint and
tlog-cosignature specifications with their worked examples, and the DSSE
protocol with its test vector. Their expected values are facts; this script
reads them and writes them, in our own compact JSON, into ``tests/vectors/``:

* ``merkle_probes.json``: every inclusion and consistency probe (inputs,
  ``wantErr``), one probe per line, hashes in base64 as published.
* ``c2sp_examples.json``: the example verifier key, notes and checkpoints.
* ``dsse_example.json``: the PAE example, its P-256 key and the envelope.

Each file carries its provenance (source, licence, how it was retrieved).
The tests read only these files, never the published material, so a clone
of the repository alone passes. ``--check`` restates into a temporary folder
and exits 1 if the committed files no longer agree with the material.

Usage::

    python scripts/restate_vectors.py --shared DIR [--out DIR] [--check]
"""

# ruff: noqa: INP001 - a maintainer's script, run by path, not a package
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Where the fixtures are committed.
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "vectors"
#: The fixture files this script writes.
NAMES = ("merkle_probes.json", "c2sp_examples.json", "dsse_example.json")
#: How the material was obtained.
RETRIEVED = "published texts copied for the computewatch workspace, restated 2026"

MERKLE_KINDS = ("inclusion", "consistency")
INCLUSION_FIELDS = ("leafIdx", "treeSize", "root", "leafHash", "proof", "desc", "wantErr")
CONSISTENCY_FIELDS = ("size1", "size2", "root1", "root2", "proof", "desc", "wantErr")

#: C2SP examples: name -> (spec file, a line that identifies the fenced block).
C2SP_BLOCKS = {
    "foo_note": ("signed-note.md", "This is an example message."),
    "quasimodo_note": ("signed-note.md", "Ognuno sta solo sul cuor della terra"),
    "sofa_cosigned_checkpoint": ("tlog-cosignature.md", "example.com/behind-the-sofa"),
    "sofa_checkpoint": ("tlog-checkpoint.md", "example.com/behind-the-sofa"),
}
FOO_VKEY = re.compile(r"example\.com/foo\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


class VectorsError(Exception):
    """The published material is missing or not shaped as expected."""


def _fenced_blocks(text: str) -> list[str]:
    return [m.group(1) for m in FENCE.finditer(text)]


def _block_containing(path: Path, marker: str) -> str:
    blocks = [b for b in _fenced_blocks(path.read_text(encoding="utf-8")) if marker in b]
    if len(blocks) != 1:
        msg = f"{path}: expected one fenced block containing {marker!r}, found {len(blocks)}"
        raise VectorsError(msg)
    return blocks[0]


def _block_after(text: str, heading: str, path: Path) -> str:
    start = text.find(f"\n{heading}\n")
    if start < 0:
        msg = f"{path}: no paragraph {heading!r}"
        raise VectorsError(msg)
    match = FENCE.search(text, start)
    if match is None:
        msg = f"{path}: no fenced block after {heading!r}"
        raise VectorsError(msg)
    return match.group(1)


def merkle_probes(shared: Path) -> dict[str, Any]:
    """Every inclusion and consistency probe of transparency-dev/merkle ``testdata/``."""
    testdata = shared / "merkle" / "testdata"
    out: dict[str, Any] = {
        "provenance": {
            "source": "transparency-dev/merkle testdata/{inclusion,consistency}/**/*.json",
            "licence": "Apache-2.0 (transparency-dev/merkle LICENSE)",
            "retrieved": RETRIEVED,
            "reference_tree": "the CT test leaves: '', 00, 10, 2021, 3031, 40414243, "
            "5051525354555657, 606162636465666768696a6b6c6d6e6f",
        },
    }
    for kind, fields in zip(MERKLE_KINDS, (INCLUSION_FIELDS, CONSISTENCY_FIELDS), strict=True):
        paths = sorted((testdata / kind).rglob("*.json"))
        if not paths:
            msg = f"{testdata / kind}: no probes"
            raise VectorsError(msg)
        probes = []
        for path in paths:
            doc = json.loads(path.read_text(encoding="utf-8"))
            probe = {"id": path.relative_to(testdata).as_posix()}
            probe.update({f: doc[f] for f in fields})
            probes.append(probe)
        out[kind] = probes
    return out


def c2sp_examples(shared: Path) -> dict[str, Any]:
    """The worked examples of the C2SP signed-note and checkpoint specifications."""
    c2sp = shared / "c2sp"
    examples: dict[str, dict[str, str]] = {}
    note_spec = c2sp / "signed-note.md"
    vkeys = sorted(set(FOO_VKEY.findall(note_spec.read_text(encoding="utf-8"))))
    if len(vkeys) != 1:
        msg = f"{note_spec}: expected one example.com/foo verifier key, found {len(vkeys)}"
        raise VectorsError(msg)
    examples["foo_vkey"] = {"spec": note_spec.name, "text": vkeys[0]}
    for name, (spec, marker) in C2SP_BLOCKS.items():
        examples[name] = {"spec": spec, "text": _block_containing(c2sp / spec, marker)}
    return {
        "provenance": {
            "source": "C2SP/C2SP signed-note.md, tlog-checkpoint.md, tlog-cosignature.md "
            "(commit 5ba5ee8), the fenced examples verbatim",
            "licence": "specifications CC BY 4.0; code and data BSD-1-Clause",
            "retrieved": RETRIEVED,
        },
        "examples": examples,
    }


def dsse_example(shared: Path) -> dict[str, Any]:
    """The test vector of DSSE protocol.md: PAE, P-256 key and JSON envelope."""
    path = shared / "dsse" / "protocol.md"
    text = path.read_text(encoding="utf-8")
    keys = dict(
        line.split(": ", 1) for line in _block_after(text, "Cryptographic keys:", path).splitlines()
    )
    envelope = _block_after(
        text, "Result (using the recommended [JSON envelope](envelope.md)):", path
    )
    return {
        "provenance": {
            "source": "secure-systems-lab/dsse protocol.md, section Test Vectors",
            "licence": "Apache-2.0 (secure-systems-lab/dsse LICENSE)",
            "retrieved": RETRIEVED,
        },
        "payload_type": _block_after(text, "PAYLOAD_TYPE:", path).removesuffix("\n"),
        "serialized_body": _block_after(text, "SERIALIZED_BODY:", path).removesuffix("\n"),
        "pae": _block_after(text, "PAE:", path).removesuffix("\n"),
        "algorithm": keys["Algorithm"],
        "x": int(keys["X"]),
        "y": int(keys["Y"]),
        "d": int(keys["d"]),
        "envelope_json": envelope.removesuffix("\n"),
    }


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one list item per line: small, and a drift shows as a one-line diff."""
    parts = []
    for key, value in doc.items():
        if isinstance(value, list):
            items = ",\n    ".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f"  {json.dumps(key)}: [\n    {items}\n  ]")
        else:
            inner = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
            parts.append(f"  {json.dumps(key)}: {inner}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write(out: Path, shared: Path) -> list[Path]:
    """Write the three fixture files into ``out`` from the material in ``shared``."""
    if not shared.is_dir():
        msg = f"{shared}: published vectors not found"
        raise VectorsError(msg)
    written = []
    for name, build in zip(NAMES, (merkle_probes, c2sp_examples, dsse_example), strict=True):
        path = out / name
        path.write_text(_dump(build(shared)), encoding="utf-8")
        written.append(path)
    return written


def check(shared: Path, committed: Path = FIXTURES) -> list[str]:
    """The fixture files whose committed text differs from a fresh restatement."""
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp), shared)
        return [
            name
            for name in NAMES
            if (Path(tmp) / name).read_bytes() != (committed / name).read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    """Command line: write (or check) the fixtures; exit 2 with one line if material is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--check", action="store_true", help="exit 1 if the fixtures drifted")
    args = parser.parse_args(argv)
    try:
        if args.check:
            drifted = check(args.shared, args.out)
            for name in drifted:
                sys.stderr.write(f"restate_vectors: {name} drifted; rerun without --check\n")
            return 1 if drifted else 0
        for path in write(args.out, args.shared):
            sys.stdout.write(f"wrote {path}\n")
    except (VectorsError, OSError, KeyError, ValueError) as exc:
        sys.stderr.write(f"restate_vectors: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
