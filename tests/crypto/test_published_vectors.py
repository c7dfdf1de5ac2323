"""The fixtures in tests/vectors/ carry their provenance, and the script that restates them works.

The conformance tests (test_merkle_vectors, test_note_vectors, test_dsse_vectors)
read only the committed fixtures, so a clone of the repository alone runs
them all; no test reads the published material. A maintainer with a copy of
it checks the fixtures still agree with
``python scripts/restate_vectors.py --shared DIR --check``; here the script
runs over small synthetic material.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "restate_vectors.py"
FIXTURES = ("merkle_probes.json", "c2sp_examples.json", "dsse_example.json")


def _restate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restate_vectors", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_carries_provenance(name: str) -> None:
    provenance = json.loads((VECTORS / name).read_text(encoding="utf-8"))["provenance"]
    assert set(provenance) >= {"source", "licence", "retrieved"}
    assert all(provenance[k] for k in ("source", "licence", "retrieved"))


def test_restating_refuses_incomplete_material(tmp_path: Path) -> None:
    """Missing material is an error naming what is missing, never an empty fixture."""
    module = _restate()
    shared = tmp_path / "shared"
    probe = shared / "merkle" / "testdata" / "inclusion" / "1"
    probe.mkdir(parents=True)
    doc = {"leafIdx": 0, "treeSize": 1, "root": "", "leafHash": "", "proof": None,
           "desc": "d", "wantErr": False}  # fmt: skip
    (probe / "p.json").write_text(json.dumps(doc), encoding="utf-8")
    (shared / "merkle" / "testdata" / "consistency").mkdir()
    with pytest.raises(module.VectorsError, match="consistency: no probes"):
        module.write(tmp_path, shared)
    assert module.main(["--shared", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2


def test_restating_copies_each_probe_field() -> None:
    module = _restate()
    probes = json.loads((VECTORS / "merkle_probes.json").read_text(encoding="utf-8"))
    assert len(probes["inclusion"]) >= 90
    assert len(probes["consistency"]) >= 90
    for probe in probes["inclusion"]:
        assert tuple(probe) == ("id", *module.INCLUSION_FIELDS)
    for probe in probes["consistency"]:
        assert tuple(probe) == ("id", *module.CONSISTENCY_FIELDS)
