"""The zygote's training-stack preload: a hint from the Verifier, bounded by an allowlist.

A transcript whose program imports transformers has the zygote import it
once (ADR 0043) instead of every forked worker doing so. The hint comes
from the Prover's program text, so the zygote imports only the modules
`PRELOADABLE` names, whatever a request asks for.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from computewatch.verification import _verify
from computewatch.verification._zygote_serve import PRELOADABLE, import_stacks

if TYPE_CHECKING:
    from pathlib import Path


def test_only_allowlisted_stacks_are_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in stack of one small module, so the test does not pay for transformers
    monkeypatch.setitem(PRELOADABLE, "stand-in", ("colorsys",))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    for name in ("antigravity", "this"):  # both act when imported
        monkeypatch.delitem(sys.modules, name, raising=False)
    import_stacks(["antigravity", "this", "os.path", 7, None, ["stand-in"]])
    import_stacks("stand-in")  # not a list: ignored
    assert not {"antigravity", "this", "colorsys"} & set(sys.modules)
    import_stacks(["stand-in", "no-such-stack"])
    assert "colorsys" in sys.modules
    assert PRELOADABLE["transformers"] == ("transformers.modeling_utils", "transformers.trainer")


@pytest.mark.parametrize(
    ("source", "stacks"),
    [
        (b"from transformers import Trainer\n", ("transformers",)),
        (b"import os\n  import transformers as t\n", ("transformers",)),
        (b"import transformers_fake\n# import transformers\n", ()),
        (b"import torch\n", ()),
    ],
)
def test_the_hint_is_read_from_the_programs_imports(
    tmp_path: Path, source: bytes, stacks: tuple[str, ...]
) -> None:
    program = tmp_path / "program.py"
    program.write_bytes(source)

    class Paths:
        pass

    class Reader:
        paths = Paths()

    Reader.paths.program = program  # type: ignore[attr-defined]
    assert _verify._stacks(Reader()) == stacks  # type: ignore[arg-type]
    program.unlink()
    assert _verify._stacks(Reader()) == ()  # type: ignore[arg-type]
