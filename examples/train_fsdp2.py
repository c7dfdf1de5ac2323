"""An FSDP2 training loop on a CPU device mesh, one process per chip, recorded by computewatch.

Each process is one chip: it joins a gloo group, builds the lab's model,
shards it with ``fully_shard`` on ``init_device_mesh("cpu", (R,))`` and
trains its part of every global batch. The lines marked ``# cw`` attach
`FSDP2Monitor`; the rest is an ordinary FSDP2 loop. This file is also the
replay contract (``PROGRAM``): the trusted cluster loads it and never runs
``main``.

    python examples/train_fsdp2.py --out out/fsdp2 --chips 4 --steps 12
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual alias
from torch.utils.data import DataLoader

from computewatch.datacenter import LoopProgram, RunSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG: dict[str, Any] = {"inputs": 8, "width": 6, "points": 256, "lr": 1e-2}


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The lab's model: widths chosen so 4 chips get uneven and empty shards."""
    width = int(config["width"])
    return nn.Sequential(nn.Linear(int(config["inputs"]), width), nn.Tanh(), nn.Linear(width, 1))


def dataset(config: Mapping[str, Any]) -> torch.Tensor:
    """Rows of inputs and a target (generated, no download)."""
    n, k = int(config["points"]), int(config["inputs"])
    x = torch.randn(n, k, generator=torch.Generator().manual_seed(14))
    return torch.cat([x, torch.tanh(x[:, :2].sum(1, keepdim=True))], 1)


def loss_fn(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean squared error on the rows' targets."""
    k = batch.shape[1] - 1
    return F.mse_loss(model(batch[:, :k]), batch[:, k:])


PROGRAM = LoopProgram(build_model=build_model, loss=loss_fn, dataset=dataset, name="fsdp2")  # cw


def shard(model: nn.Module, chips: int) -> nn.Module:
    """The lab's FSDP2 wrapping: every Linear, then the root."""
    from torch.distributed.device_mesh import init_device_mesh  # noqa: PLC0415
    from torch.distributed.fsdp import fully_shard  # noqa: PLC0415

    mesh = init_device_mesh("cpu", (chips,))
    for layer in model.children():
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def chip_main(rank: int, args: dict[str, Any]) -> None:
    """One chip: the lab's FSDP2 loop with the monitor attached."""
    import torch.distributed as dist  # noqa: PLC0415

    from computewatch.integrations.fsdp2 import FSDP2Monitor  # noqa: PLC0415
    from computewatch.testing import provisioned_chip  # noqa: PLC0415 - an emulated chip

    out, chips = Path(args["out"]), int(args["chips"])
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{args['port']}", rank=rank, world_size=chips
    )
    config = dict(CONFIG)
    model = shard(build_model(config), chips)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.01)
    chip = provisioned_chip(out / f"chip-{rank}", f"CW-F-{rank}")
    spec = RunSpec(
        run_id="fsdp2",
        program_path=Path(__file__),
        config=config,  # cw
        batch_size=int(args["batch"]),
        steps=int(args["steps"]),
        data_seed=2,  # cw
        checkpoint_every=int(args["every"]),
        world_size=chips,
    )  # cw
    monitor = FSDP2Monitor(spec, model, optimizer, out / "run", chip=chip)  # cw
    loader: DataLoader[torch.Tensor] = DataLoader(
        dataset(config),  # type: ignore[arg-type] # a tensor is indexable by point
        batch_sampler=monitor.batch_sampler,  # cw
        collate_fn=monitor.collate,
    )  # cw
    swap = args.get("swap_step")
    local_hashes = []  # for the tests: this rank's to_local() shards after every step
    for step, batch in enumerate(loader):
        fed = batch.flip(0).roll(1, dims=1) if step == swap else batch  # a cheat, for the tests
        loss = monitor.observe(loss_fn(model, fed))  # cw
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if args.get("local_hashes"):
            from computewatch.crypto import shard_hash  # noqa: PLC0415

            local = [p.to_local().detach().reshape(-1) for p in model.parameters()]  # type: ignore[attr-defined]
            local_hashes.append(str(shard_hash(torch.cat(local))))
    if local_hashes:
        (out / f"chip-{rank}-local.json").write_text(json.dumps(local_hashes))
    monitor.finish()  # cw
    chip.public_key.save(out / f"chip-{rank}.pub")
    chip.close()
    dist.destroy_process_group()


def run(
    out: Path,
    *,
    chips: int,
    steps: int,
    batch: int = 8,
    every: int = 4,
    swap_step: int | None = None,
    local_hashes: bool = False,
) -> list[str]:
    """Spawn one process per chip; return the chips' serials."""
    import torch.multiprocessing as mp  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = {
        "out": str(out),
        "chips": chips,
        "steps": steps,
        "batch": batch,
        "every": every,
        "port": port,
        "swap_step": swap_step,
        "local_hashes": local_hashes,
    }
    mp.spawn(chip_main, args=(args,), nprocs=chips, join=True)  # type: ignore[attr-defined,no-untyped-call]
    return [f"CW-F-{r}" for r in range(chips)]


def main() -> None:
    """Record an FSDP2 run; print how to verify it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/fsdp2"))
    p.add_argument("--chips", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    a = p.parse_args()
    serials = run(a.out, chips=a.chips, steps=a.steps)
    chips = [
        f"--chip {s},{a.out}/chip-{r}.pub,{a.out}/chip-{r}/nvram.log" for r, s in enumerate(serials)
    ]
    print(
        json.dumps(
            {
                "run": str(a.out / "run"),
                "verify": f"computewatch cluster verify --transcript "
                f"{a.out}/run --report {a.out}/run/report.json --key cluster.key --out v.json "
                + " ".join(chips),
            }
        )
    )


if __name__ == "__main__":
    main()
