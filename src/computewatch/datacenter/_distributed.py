"""Multi-chip runs: one `torch.distributed` process per chip (gloo on CPU).

`train_distributed` starts `world_size` processes; process `r` opens chip
folder `r`, boots it with the given firmware, joins a gloo process group on
127.0.0.1 and runs `train` as rank `r`. Each chip's firmware snapshots its
own shard ω; chip 0's process writes the run-wide transcript files.

The processes fork from a ``forkserver`` that has imported torch (with
inductor's config) and this module once, so a chip's process starts in
milliseconds instead of paying torch's import (seconds) every run. A fork
holds the server's state, not the caller's, so each chip's process takes
the caller's environment and working folder as they are at this call.

Example::

    >>> train_distributed(spec, "runs/r4", chip_folders, firmware)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.datacenter._run import RunSpec, TrainSummary, train
from computewatch.errors import ComputeWatchError, FormatError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DistributedRunError", "train_distributed"]


class DistributedRunError(ComputeWatchError):
    """A chip's process failed; the message carries its one-line error."""

    exit_code = 1
    kind = "distributed run failed"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serial(folder: Path) -> str:
    try:
        return str(json.loads((folder / "chip.json").read_text())["serial"])
    except (OSError, ValueError, KeyError) as e:
        msg = f"chip folder {folder}: no readable chip.json"
        raise FormatError(msg) from e


def _worker(  # noqa: PLR0917 - torch.multiprocessing passes arguments positionally
    rank: int,
    spec_doc: dict[str, Any],
    run_dir: str,
    folders: list[str],
    firmware: bytes,
    port: int,
    options: dict[str, Any],
    out_dir: str,
    caller: dict[str, Any],
) -> None:
    import torch.distributed as dist  # noqa: PLC0415

    os.environ.clear()  # the caller's environment, not the forkserver's
    os.environ.update(caller["env"])
    os.chdir(caller["cwd"])

    from computewatch.chip import Chip  # noqa: PLC0415

    result: dict[str, Any] = {"rank": rank}
    try:
        spec = RunSpec(**spec_doc)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=spec.world_size
        )
        with Chip.open(folders[rank]) as chip:
            chip.boot(firmware)
            summary = train(
                spec,
                run_dir,
                chip=chip,
                chip_serials=[_serial(Path(f)) for f in folders],
                rank=rank,
                resume=options["resume"],
                stop_after=options["stop_after"],
                barrier=dist.barrier,
            )
        result.update(
            ok=True,
            steps_done=summary.steps_done,
            losses=summary.losses,
            seconds=summary.seconds,
            report=summary.report,
        )
    except ComputeWatchError as e:
        result.update(ok=False, error=e.diagnostics())
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        result.update(ok=False, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc())
    finally:
        Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(result))
        if dist.is_initialized():
            dist.destroy_process_group()


def train_distributed(
    spec: RunSpec,
    run_dir: str | os.PathLike[str],
    chip_folders: Sequence[str | os.PathLike[str]],
    firmware: bytes,
    *,
    resume: bool = False,
    stop_after: int | None = None,
) -> TrainSummary:
    """Run `spec` on `len(chip_folders)` chips, one process each; return chip 0's summary."""
    from torch.multiprocessing.spawn import (  # noqa: PLC0415
        ProcessExitedException,
        ProcessRaisedException,
        start_processes,
    )

    folders = [str(Path(f).resolve()) for f in chip_folders]
    if len(folders) != spec.world_size:
        msg = f"chip folders: expected {spec.world_size} (the world size), got {len(folders)}"
        raise FormatError(msg)
    for f in folders:
        _serial(Path(f))
    spec_doc = {
        "run_id": spec.run_id,
        "program_path": str(Path(spec.program_path).resolve()),
        "config": spec.config,
        "batch_size": spec.batch_size,
        "steps": spec.steps,
        "data_seed": spec.data_seed,
        "checkpoint_every": spec.checkpoint_every,
        "threads": spec.threads,
        "world_size": spec.world_size,
        "global_seed": spec.global_seed,
        "init_std": spec.init_std,
        "micro_shards": spec.micro_shards,
    }
    options = {"resume": resume, "stop_after": stop_after}
    caller = {"env": dict(os.environ), "cwd": str(Path.cwd())}
    # Before the server's first start; later calls find it running. A chip's
    # first call, torch.use_deterministic_algorithms, imports inductor's config
    # (about a second), so the server imports it too.
    preload = ["torch", "torch._inductor.config", __name__]
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    with tempfile.TemporaryDirectory() as out_dir:
        ctx = start_processes(  # type: ignore[no-untyped-call]
            _worker,
            args=(
                spec_doc,
                str(Path(run_dir).resolve()),
                folders,
                firmware,
                _free_port(),
                options,
                out_dir,
                caller,
            ),
            nprocs=spec.world_size,
            join=False,
            start_method="forkserver",
        )
        try:
            while not ctx.join():
                pass
        except ProcessRaisedException as e:  # pragma: no cover - _worker catches everything
            raise DistributedRunError(str(e).splitlines()[-1]) from e
        except ProcessExitedException as e:
            msg = f"a chip's process died ({e})"
            raise DistributedRunError(msg) from e
        results: list[dict[str, Any]] = []
        for rank in range(spec.world_size):
            path = Path(out_dir, f"rank-{rank}.json")
            results.append(
                json.loads(path.read_text())
                if path.exists()
                else {"ok": False, "error": "no result"}
            )
    failed = [r for r in results if not r.get("ok")]
    if failed:
        first = failed[0]
        msg = f"chip rank {first.get('rank')}: {first.get('error')}"
        raise DistributedRunError(msg)
    head = results[0]
    return TrainSummary(
        steps_done=head["steps_done"],
        losses=head["losses"],
        seconds=head["seconds"],
        report=head["report"],
    )
