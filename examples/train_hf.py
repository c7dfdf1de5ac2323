"""A Hugging Face ``Trainer`` run, recorded by computewatch in a handful of lines.

A GPT-2-shaped model built from ``GPT2Config`` (tiny, no download) learns
generated text with the lab's ``transformers.Trainer``, gradient
accumulation included. Three things attach the monitor (marked ``# cw``):
the `MonitorCallback` in ``callbacks``, its committed-order view of the data
set as ``train_dataset`` and its checking collator as ``data_collator``.
The replay contract is this file: ``PROGRAM`` names the model, the loss the
Trainer computes, the data and the Trainer's schedule.

    python examples/train_hf.py --out out/hf --steps 40 --accumulation 2 [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from computewatch.datacenter import LoopProgram, RunSpec
from computewatch.integrations.hf import MonitorCallback, causal_lm_loss, hf_learning_rate

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG: dict[str, Any] = {
    "gpt2": {
        "vocab_size": 256, "n_positions": 16, "n_embd": 32, "n_layer": 2, "n_head": 2,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "bos_token_id": 0, "eos_token_id": 0,
    },
    "points": 512,
}  # fmt: skip
_WORDS = ("a", "lab", "trains", "its", "model", "and", "the", "chip", "logs", "weights")


class Windows(Dataset[torch.Tensor]):
    """Token windows of generated text (byte-level tokens, no tokenizer to download)."""

    def __init__(self, length: int, points: int) -> None:
        """`points` windows of `length` bytes."""
        rng = random.Random(14)  # noqa: S311 - data, not secrets
        text = bytearray()
        while len(text) < length * points:
            text += (" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9))) + ". ").encode()
        data = torch.frombuffer(text[: length * points], dtype=torch.uint8)
        self.data = data.long().view(points, length)

    def __len__(self) -> int:
        """How many windows."""
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        """Window `index`."""
        return self.data[index].clone()


def build_model(config: Mapping[str, Any]) -> torch.nn.Module:
    """A GPT-2-shaped model from its configuration (weights from the precommitted seed)."""
    model = GPT2LMHeadModel(GPT2Config(**config["gpt2"]))
    # transformers finds no loss type in the name "GPT2LMHeadModel": its Trainer would
    # then divide the summed loss by all labels, not by the predicted (shifted) ones
    model.loss_type = "ForCausalLM"
    return model


def dataset(config: Mapping[str, Any]) -> Windows:
    """The lab's data set."""
    return Windows(int(config["gpt2"]["n_positions"]), int(config["points"]))


#: The replay contract: the Trainer's model, loss, data and schedule.
PROGRAM = LoopProgram(
    build_model=build_model, loss=causal_lm_loss, dataset=dataset,
    learning_rate=hf_learning_rate, name="hf-gpt2-example",
)  # fmt: skip


def main() -> None:
    """Train with the lab's HF Trainer on one emulated chip, recording the transcript."""
    from computewatch.chip import Chip, sign_firmware  # noqa: PLC0415
    from computewatch.crypto import SigningKey  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/hf"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8, help="per optimizer step")
    parser.add_argument("--accumulation", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--bf16", action="store_true", help="train under bf16 autocast")
    args = parser.parse_args()
    config = dict(CONFIG, autocast="bfloat16") if args.bf16 else CONFIG  # the replay's precision

    maker = SigningKey.generate()
    firmware = sign_firmware(
        name="computewatch-fw", version=1, code=b"example firmware", chipmaker=maker,
        snapshot_rate_per_day=86_400.0 * 20,
    )  # fmt: skip
    chip = Chip.provision(args.out / "chip", "CW-HF-0", maker.verifying_key)
    chip.boot(firmware)
    chip.public_key.save(args.out / "chip.pub")

    spec = RunSpec(
        run_id="hf-example", program_path=Path(__file__), config=config,
        batch_size=args.batch_size, steps=args.steps, data_seed=1,
        checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    callback = MonitorCallback(spec, args.out / "run", chip=chip)  # cw
    training = TrainingArguments(
        output_dir=str(args.out / "hf"), max_steps=args.steps, learning_rate=3e-3,
        per_device_train_batch_size=args.batch_size // args.accumulation,
        gradient_accumulation_steps=args.accumulation, warmup_steps=4,
        max_grad_norm=0.0, train_sampling_strategy="sequential", bf16=args.bf16,
        save_strategy="steps", save_steps=args.checkpoint_every, save_only_model=True,
        logging_steps=10, report_to="none", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    trainer = Trainer(
        model=build_model(CONFIG), args=training,
        train_dataset=callback.train_dataset(dataset(CONFIG)),  # cw
        data_collator=callback.collate, callbacks=[callback],  # cw
    )  # fmt: skip
    result = trainer.train()
    report = callback.report or {}
    chip.close()
    print(json.dumps({
        "steps": result.global_step, "train_loss": result.training_loss,
        "snapshots": len(report.get("snapshots", [])), "commitment": report.get("commitment"),
        "transcript": str(args.out / "run"),
        "chip": f"CW-HF-0,{args.out / 'chip.pub'},{chip.log_path}",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
