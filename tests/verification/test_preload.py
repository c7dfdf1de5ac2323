"""The zygote's training-stack preload: a hint from the Verifier, bounded by an allowlist.

A transcript whose program imports transformers has the zygote import it
once (ADR 0043) instead of every forked worker doing so. The hint comes
from the Prover's program text, so the zygote imports only the modules
`PRELOADABLE` names, whatever a request asks for.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from computewatch.verification import _verify
from computewatch.verification._zygote import PRELOADABLE

if TYPE_CHECKING:
    from pathlib import Path

_PROBE = """
import sys
from computewatch.verification._zygote import _preload_stacks
_preload_stacks(["antigravity", "this", "os.path", 7, None, ["transformers"]])
_preload_stacks("transformers")  # not a list: ignored
print("antigravity" in sys.modules, "this" in sys.modules, "transformers" in sys.modules)
_preload_stacks(["transformers"])
print(all(m in sys.modules for m in %r))
"""


def test_only_allowlisted_stacks_are_imported() -> None:
    modules = list(PRELOADABLE["transformers"])
    run = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _PROBE % modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert run.stdout.split() == ["False", "False", "False", "True"], run.stderr[-800:]


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
