"""Every docstring example in computewatch runs, and stays true, under doctest.

Each module of the package is imported and its examples run with
`doctest` (ELLIPSIS and NORMALIZE_WHITESPACE), inside a fresh temporary
working folder, so examples may create files under relative paths. An
example is marked ``# doctest: +SKIP`` only when it needs a server, a live
training run or a whole audit; a module whose examples are *all* skipped
must be listed in `ALL_SKIPPED` with the reason, so a newly skipped module
fails `test_only_listed_modules_skip_every_example`.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from typing import TYPE_CHECKING

import pytest

import computewatch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Modules whose every example is skipped, and why they cannot run here.
ALL_SKIPPED: dict[str, str] = {
    "computewatch.chip._attested": "needs a booted chip's attestation",
    "computewatch.chip._tpm": "needs a TPM (swtpm) listening",
    "computewatch.datacenter._checkpoint": "needs a recorded run's checkpoints",
    "computewatch.datacenter._commitment": "needs a recorded transcript",
    "computewatch.datacenter._distributed": "starts torch.distributed workers",
    "computewatch.datacenter._trainer": "trains a model",
    "computewatch.inspection._audit_steps": "runs an audit's inspection and verification",
    "computewatch.integrations.fsdp2": "starts an FSDP2 process group (one process per chip)",
    "computewatch.inspection._folder_report": "needs a completed audit folder",
    "computewatch.inspection._html": "needs a completed audit's report",
    "computewatch.inspection._period": "needs a live registry server",
    "computewatch.supplychain._audit_client": "needs a live registry server",
    "computewatch.verification._challenge": "needs a recorded run's checkpoints to answer from",
    "computewatch.supplychain._receipt_client": "talks to a live registry server",
    "computewatch.supplychain._holdings": "replays a registry's log",
    "computewatch.supplychain._registry": "needs a running registry with keys and a database",
    "computewatch.supplychain._settings": "reads a server's key files",
    "computewatch.supplychain._sqllog": "needs the registry's database schema and a transaction",
    "computewatch.supplychain._witnessapp": "serves a witness over HTTP",
    "computewatch.supplychain._witnessing": "needs live witness servers",
    "computewatch.verification._cluster": "runs the sandboxed trusted cluster",
    "computewatch.verification._engine": "starts sandboxed replay workers (or Ray)",
    "computewatch.verification._heuristics": "needs a recorded transcript",
    "computewatch.verification._prover": "starts sandboxed replay workers",
    "computewatch.verification._reader": "needs a recorded transcript",
    "computewatch.verification._replay": "replays a recorded training run",
    "computewatch.verification._sandbox": "starts a sandboxed process",
}


def _modules() -> list[str]:
    names = [computewatch.__name__]
    for info in pkgutil.walk_packages(computewatch.__path__, prefix="computewatch."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def _examples(name: str) -> list[doctest.Example]:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [ex for test in finder.find(module, name) for ex in test.examples]


MODULES_WITH_EXAMPLES = [name for name in _modules() if _examples(name)]


@pytest.fixture
def torch_switches() -> Iterator[None]:
    """Put back the process-wide torch switches an example (set_determinism) may flip."""
    import torch  # noqa: PLC0415 - heavy

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(mode=deterministic)


@pytest.mark.usefixtures("torch_switches")
@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # set_determinism sets this variable when unset: have monkeypatch restore it.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_only_listed_modules_skip_every_example() -> None:
    all_skipped = {
        name
        for name in MODULES_WITH_EXAMPLES
        if all(ex.options.get(doctest.SKIP) for ex in _examples(name))
    }
    assert all_skipped == set(ALL_SKIPPED), (
        f"newly all-skipped: {sorted(all_skipped - set(ALL_SKIPPED))}; "
        f"now runnable, drop from ALL_SKIPPED: {sorted(set(ALL_SKIPPED) - all_skipped)}"
    )


def test_the_walk_sees_the_package() -> None:
    """Guard the guard: the walk finds modules, and examples in the ones known to have them."""
    names = _modules()
    assert "computewatch.chip._tpm" in names
    assert "computewatch.crypto._merkle" in MODULES_WITH_EXAMPLES
    assert len(MODULES_WITH_EXAMPLES) >= 30
