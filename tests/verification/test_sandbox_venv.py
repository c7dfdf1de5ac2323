"""The sandbox's root when the Verifier runs from a venv reached through a symlink."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.verification.test_sandbox import isolation

__all__ = ["isolation"]


@pytest.mark.usefixtures("isolation")
def test_a_verifier_started_through_a_symlinked_venv_runs_sandboxed_python(
    tmp_path: Path,
) -> None:
    """``.venv`` a link to a shared venv: the child's ``sys.executable`` names the link."""
    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    python = link / Path(sys.executable).relative_to(sys.prefix)  # the venv's bin/python
    code = (
        "import sys; from computewatch.verification import run_isolated; "
        "out, iso = run_isolated([sys.executable, '-c', "
        "'import sys, computewatch.errors; print(sys.prefix)'], inputs=[], timeout=120); "
        "print(out.decode().strip(), iso.complete)"
    )
    run = subprocess.run(  # noqa: S603
        [str(python), "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.split() == [str(link), "True"]
