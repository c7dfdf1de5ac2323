"""A plain PyTorch training loop, recorded by computewatch in a handful of lines.

The lab's loop stays its own: it builds its model and optimizer, iterates a
``DataLoader`` and steps. Four lines attach the monitor (marked ``# cw``):
the `Monitor` over the model and optimizer, its precommitted batch sampler
and checking collate in the ``DataLoader``, the loss passed through
`Monitor.observe`, and `Monitor.finish`. The replay contract is this very
file: ``PROGRAM`` names the model, loss and data functions the loop uses
(the trusted cluster loads the file and never runs ``main``).

    python examples/train_loop.py --out out/loop --steps 60
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual alias
from torch.utils.data import DataLoader, Dataset

from computewatch.datacenter import LoopProgram, Monitor, RunSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG: dict[str, Any] = {"context": 8, "width": 32, "points": 512, "lr": 3e-3}
_WORDS = ("the", "a", "chip", "logs", "every", "step", "of", "training", "and", "replays")


def text(n_bytes: int) -> bytes:
    """Generated training text: seeded random sentences (no download)."""
    rng = random.Random(2303)  # noqa: S311 - data, not secrets
    out = bytearray()
    while len(out) < n_bytes:
        out += (" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12))) + ". ").encode()
    return bytes(out[:n_bytes])


class NextByte(nn.Module):
    """Predicts the next byte from the previous `context` bytes."""

    def __init__(self, context: int, width: int) -> None:
        """An embedding, one hidden layer and a byte head."""
        super().__init__()
        self.embed = nn.Embedding(256, width)
        self.hidden = nn.Linear(context * width, 4 * width)
        self.head = nn.Linear(4 * width, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, context) byte ids -> (batch, 256) logits."""
        h = self.embed(x).flatten(1)  # (batch, context * width)
        out: torch.Tensor = self.head(F.gelu(self.hidden(h)))
        return out


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The lab's model."""
    return NextByte(int(config["context"]), int(config["width"]))


class Windows(Dataset[torch.Tensor]):
    """Windows of `context + 1` bytes of the text (inputs, then the target)."""

    def __init__(self, context: int, points: int) -> None:
        """`points` windows."""
        n = context + 1
        self.data = torch.frombuffer(bytearray(text(points * n)), dtype=torch.uint8).view(-1, n)

    def __len__(self) -> int:
        """How many windows."""
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        """Window `index`."""
        return self.data[index].clone()


def dataset(config: Mapping[str, Any]) -> Windows:
    """The lab's data set."""
    return Windows(int(config["context"]), int(config["points"]))


def loss_fn(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy."""
    batch = batch.long()
    return F.cross_entropy(model(batch[:, :-1]), batch[:, -1])


#: The replay contract: what the trusted cluster runs to replay a segment.
PROGRAM = LoopProgram(build_model=build_model, loss=loss_fn, dataset=dataset, name="loop-example")


def main() -> None:
    """Train with the lab's own loop on one emulated chip, recording the transcript."""
    from computewatch.chip import Chip, sign_firmware  # noqa: PLC0415
    from computewatch.crypto import SigningKey  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/loop"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    args = parser.parse_args()

    maker = SigningKey.generate()
    firmware = sign_firmware(
        name="computewatch-fw", version=1, code=b"example firmware", chipmaker=maker,
        snapshot_rate_per_day=86_400.0 * 20,
    )  # fmt: skip
    chip = Chip.provision(args.out / "chip", "CW-LOOP-0", maker.verifying_key)
    chip.boot(firmware)
    chip.public_key.save(args.out / "chip.pub")

    # the lab's own setup and loop; the lines marked `# cw` are the monitoring
    model = build_model(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CONFIG["lr"], weight_decay=0.01)
    spec = RunSpec(
        run_id="loop-example", program_path=Path(__file__), config=CONFIG,
        batch_size=args.batch_size, steps=args.steps, data_seed=1,
        checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    monitor = Monitor(spec, model, optimizer, args.out / "run", chip=chip)  # cw
    loader = DataLoader(
        dataset(CONFIG), batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate
    )  # cw
    for batch in loader:
        loss = monitor.observe(loss_fn(model, batch))  # cw
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    report = monitor.finish()  # cw
    chip.close()
    print(json.dumps({
        "steps": args.steps, "last_loss": float(loss), "snapshots": len(report["snapshots"]),
        "commitment": report["commitment"], "transcript": str(args.out / "run"),
        "chip": f"CW-LOOP-0,{args.out / 'chip.pub'},{chip.log_path}",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
