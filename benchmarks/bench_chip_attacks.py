"""Chip-evidence attacks (issue 16): detection and false findings, resumable.

For every attack of `computewatch.attacks.CHIP_EVIDENCE_ATTACKS` (a log cut
short or emptied, a slowed host clock, step-number, code-hash and
precommitment lies, double claims, unreported runs, a huge firmware
version, an update before an inspection, rolled-back chip state): build it
on a real chip, run the real defence, and build the honest twin on another
chip and run the same defence (a finding there is a false finding).

The campaign accumulates: trials already in
``benchmarks/results/chip_attacks/NAME.json`` are kept and new ones added
until each attack has `TRIALS`, so it can be stopped and resumed, and
processes given different ``--only`` lists run side by side
(``python benchmarks/bench_chip_attacks.py [--backend file|tpm] [--trials N]
[--only NAME ...]``; ``run.py chip_attacks`` runs the file backend). With
``--backend tpm`` every chip of every trial gets its own swtpm TPM 2.0
simulator (identity key, NV counters, clock; simulated chip-days by
TPM2_ClockSet) and the trials accumulate in ``results/chip_attacks/tpm/``.
Trials run on tmpfs where there is one (each trial's chips are a few dozen
fsyncs). Quick mode runs one trial of each and does not touch the campaign
file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # the TPM backend reuses tests.chip.swtpm
    sys.path.insert(0, str(HERE.parent))
CAMPAIGN = HERE / "results" / "chip_attacks"
#: Trials per attack: 299 clean trials give a 95 % one-sided lower bound of 0.99.
TRIALS = 299
_SAVE_EVERY = 10
_MAX_TIME_WAIT = 14_000  # of the ~28,000 ephemeral ports: half, the rest for others
_MAX_RETRIES = 50
_STOP: list[bool] = []  # set by SIGTERM: stop after the trial in flight


def _tmp_root() -> str | None:
    shm = Path("/dev/shm")  # noqa: S108 - only a parent for mkdtemp (private, random names)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _folder(backend: str) -> Path:
    return CAMPAIGN if backend == "file" else CAMPAIGN / backend


def _load(backend: str) -> dict[str, Any]:
    folder = _folder(backend)
    attacks = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return {"backend": backend, "attacks": attacks}


def _save(backend: str, name: str, rec: dict[str, Any]) -> None:
    folder = _folder(backend)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / f"{name}.json")


@contextlib.contextmanager
def _elements(backend: str) -> Iterator[None]:
    """This trial's secure elements: the file element, or a swtpm per chip (stopped after)."""
    if backend == "file":
        yield
        return
    from tests.chip.swtpm import swtpm_server  # noqa: PLC0415

    from computewatch.attacks import TpmElements, use_elements  # noqa: PLC0415

    tpms = TpmElements(swtpm_server)
    try:
        with use_elements(tpms):
            yield
    finally:
        tpms.close()


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    from computewatch.attacks import one_sided_bounds  # noqa: PLC0415

    n, k, m = rec["trials"], rec["detected"], rec["false_findings"]
    return {
        "trials": n,
        "detected": k,
        "detection_lower95": one_sided_bounds(k, n)[0] if n else None,
        "false_findings": m,
        "false_finding_upper95": one_sided_bounds(m, n)[1] if n else None,
        "seconds_per_trial": rec["seconds"] / n if n else None,
    }


def _time_wait_sockets() -> int:
    """TCP sockets in TIME-WAIT here (the TPM link leaves none since ADR 0036; others may)."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as f:  # noqa: PTH123 - procfs
            count += sum(1 for line in f if line.split()[3:4] == ["06"])
    return count


def _trial(attack: Any, trial: int, backend: str, rng: np.random.Generator) -> Any:
    """One trial: (attack's detection, honest twin's), or None if an element would not start.

    Any other exception is a broken trial, recorded as a miss and a false
    finding (fail closed). On the TPM backend trials wait while the host
    holds many TIME-WAIT sockets, so the simulators always find free ports.
    """
    from computewatch.attacks import Detection  # noqa: PLC0415

    if backend != "file":
        while _time_wait_sockets() > _MAX_TIME_WAIT:
            time.sleep(1.0)
    work = Path(tempfile.mkdtemp(prefix="cw-chipatk-", dir=_tmp_root()))
    try:
        with _elements(backend):
            caught = attack.detect(attack.create(work, trial, []), None, rng)
        with _elements(backend):
            honest = attack.detect(attack.honest(work, trial), None, rng)
    except Exception as e:  # noqa: BLE001 - a broken trial is recorded, not fatal
        if type(e).__name__ == "SwtpmError" or _STOP:  # a stop signals the simulators too
            return None
        failed = Detection(detected=False, detail=f"trial raised {type(e).__name__}: {e}")
        return failed, Detection(detected=True, detail=failed.detail)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return caught, honest


def campaign(
    trials: int = TRIALS,
    only: tuple[str, ...] = (),
    *,
    record: bool = True,
    backend: str = "file",
) -> dict[str, Any]:
    """Run each selected attack (and its honest twin) until it has ``trials`` trials."""
    from computewatch.attacks import CHIP_EVIDENCE_ATTACKS  # noqa: PLC0415

    doc: dict[str, Any] = _load(backend) if record else {"backend": backend, "attacks": {}}
    rng = np.random.default_rng(16)
    chosen = [a for a in CHIP_EVIDENCE_ATTACKS if not only or a.name in only]
    for attack in chosen:
        if record:  # reread: a process running beside this one may have added trials
            doc["attacks"].update(
                {k: v for k, v in _load(backend)["attacks"].items() if k == attack.name}
            )
        rec = doc["attacks"].setdefault(
            attack.name,
            {"trials": 0, "detected": 0, "false_findings": 0, "seconds": 0.0, "misses": []},
        )
        while rec["trials"] < trials and not _STOP:
            trial = rec["trials"]
            t0 = time.perf_counter()
            outcome = _trial(attack, trial, backend, rng)
            if outcome is None:  # the simulator failed (or was stopped): not a trial; wait, retry
                rec["element_retries"] = rec.get("element_retries", 0) + 1
                if rec["element_retries"] > _MAX_RETRIES:
                    msg = f"{attack.name}: the {backend} element failed to start too often"
                    raise RuntimeError(msg)
                time.sleep(5.0)
                continue
            caught, honest = outcome
            rec["seconds"] += time.perf_counter() - t0
            rec["trials"] += 1
            rec["detected"] += bool(caught.detected)
            rec["false_findings"] += bool(honest.detected)
            if not caught.detected or honest.detected:
                rec["misses"].append(
                    {
                        "trial": trial,
                        "attack": caught.to_json(),
                        "honest": honest.to_json(),
                    }
                )
            if record and rec["trials"] % _SAVE_EVERY == 0:
                _save(backend, attack.name, rec)
        if record:
            _save(backend, attack.name, rec)
        if _STOP:
            break
    return {
        "backend": doc["backend"],
        "target_trials": trials,
        "attacks": {name: _summary(rec) for name, rec in sorted(doc["attacks"].items())},
    }


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """One trial each when `quick` (campaign file untouched); else resume the campaign."""
    return campaign(1 if quick else TRIALS, record=not quick)


def main(argv: list[str] | None = None) -> int:
    """Resume the campaign from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--backend", choices=("file", "tpm"), default="file")
    args = parser.parse_args(argv)
    # SIGTERM stops the campaign after the trial in flight (saved, its simulators
    # stopped). Not an exception: one raised in the TPM link's callback (most of
    # a trial's time) is dropped by cffi, and the signal with it.
    signal.signal(signal.SIGTERM, lambda *_: _STOP.append(True))
    result = campaign(args.trials, tuple(args.only), backend=args.backend)
    print(json.dumps(result, indent=2))
    return 143 if _STOP else 0


if __name__ == "__main__":
    sys.exit(main())
