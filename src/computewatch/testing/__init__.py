"""A testing kit: tiny monitored runs, provisioned chips and a live registry.

Tests, benchmarks, examples and the attack corpus build their worlds from
these instead of copying set-up code, and deviate from the honest protocol
only through the library's explicit seams (`computewatch.datacenter.train`'s
``init`` and ``batches``), never by patching private functions::

    from computewatch.testing import train_on_chip

    run = train_on_chip(tmp_path)                      # an honest tiny run
    assert run.verify().passed
    spoof = train_on_chip(tmp_path, "spoof", "CW-2", init=lambda *a, **k: w.clone())

* `provisioned_chip`: a chip manufactured and booted with signed firmware;
* `tiny_spec`, `train_on_chip`, `TinyRun`: 24-step runs of the example
  program on a real chip, with the Verifier's view and `verify()`;
* `claims_report`: a parseable Prover report claiming given chip-log
  snapshots (what a chip inspection reads of a report);
* `RegistryKeys`, `registry_server`: the registry service as a real child
  process (``computewatch registry serve``) on a free port of 127.0.0.1;
* `LocalRegistry`: the same registry core in process on SQLite, with a fab
  that enrols chips, as a chip's receipt server and high-water source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.testing._chips import FAST_RATE, MAKER_SEED, maker_key, provisioned_chip
    from computewatch.testing._local_registry import LocalRegistry
    from computewatch.testing._registry import (
        HOST,
        ORIGIN,
        START_TIMEOUT_S,
        RegistryKeys,
        RegistryServer,
        free_port,
        registry_server,
    )
    from computewatch.testing._reports import claims_report
    from computewatch.testing._runs import EXAMPLE, TINY, TinyRun, tiny_spec, train_on_chip

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "FAST_RATE": "computewatch.testing._chips",
            "MAKER_SEED": "computewatch.testing._chips",
            "maker_key": "computewatch.testing._chips",
            "provisioned_chip": "computewatch.testing._chips",
            "LocalRegistry": "computewatch.testing._local_registry",
            "HOST": "computewatch.testing._registry",
            "ORIGIN": "computewatch.testing._registry",
            "START_TIMEOUT_S": "computewatch.testing._registry",
            "RegistryKeys": "computewatch.testing._registry",
            "RegistryServer": "computewatch.testing._registry",
            "free_port": "computewatch.testing._registry",
            "registry_server": "computewatch.testing._registry",
            "claims_report": "computewatch.testing._reports",
            "EXAMPLE": "computewatch.testing._runs",
            "TINY": "computewatch.testing._runs",
            "TinyRun": "computewatch.testing._runs",
            "tiny_spec": "computewatch.testing._runs",
            "train_on_chip": "computewatch.testing._runs",
        },
    )

__all__ = [
    "EXAMPLE",
    "FAST_RATE",
    "HOST",
    "MAKER_SEED",
    "ORIGIN",
    "START_TIMEOUT_S",
    "TINY",
    "LocalRegistry",
    "RegistryKeys",
    "RegistryServer",
    "TinyRun",
    "claims_report",
    "free_port",
    "maker_key",
    "provisioned_chip",
    "registry_server",
    "tiny_spec",
    "train_on_chip",
]
