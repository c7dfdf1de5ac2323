"""The held-out bits-per-byte benchmark on a toy byte-level model."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual alias

from computewatch.errors import CheckUnavailable, FormatError, ParameterError
from computewatch.rules import Benchmark, HeldOutBitsPerByte

if TYPE_CHECKING:
    from collections.abc import Mapping


class CountingProgram:
    """Points are 9 consecutive bytes `i, i+1, ...` (mod 256); next-byte loss."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def dataset_size(self, config: Mapping[str, Any]) -> int:
        return int(config["n"])

    def data_point(self, config: Mapping[str, Any], index: int) -> torch.Tensor:
        del config
        self.asked.append(index)
        return torch.arange(index, index + 9, dtype=torch.int64).remainder(256).to(torch.uint8)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        x, y = batch[:, :-1].long(), batch[:, 1:].long()
        logits = model(x)  # (batch, 8, 256)
        return F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))


def bigram(weight: torch.Tensor) -> nn.Module:
    """A model whose next-byte logits for byte b are `weight[b]`."""
    model = nn.Embedding(256, 256)
    with torch.no_grad():
        model.weight.copy_(weight)
    return model


def test_uniform_model_scores_eight_bits_per_byte() -> None:
    model = bigram(torch.zeros(256, 256))
    score = HeldOutBitsPerByte().score(model, CountingProgram(), {"n": 1000})
    assert score == pytest.approx(8.0, abs=1e-5)


def test_a_model_that_knows_the_data_scores_near_zero() -> None:
    knows = torch.full((256, 256), -20.0)
    knows[torch.arange(256), (torch.arange(256) + 1) % 256] = 20.0
    score = HeldOutBitsPerByte().score(bigram(knows), CountingProgram(), {"n": 1000})
    assert 0.0 <= score < 1e-3


def test_scores_the_last_points_in_batches_without_gradients() -> None:
    program = CountingProgram()
    model = bigram(torch.randn(256, 256, generator=torch.Generator().manual_seed(0)))
    model.train()
    bench = HeldOutBitsPerByte(points=10, batch_size=4)
    assert bench.indices(program, {"n": 100}) == range(90, 100)
    score = bench.score(model, program, {"n": 100})
    assert program.asked == list(range(90, 100))
    assert model.training  # its mode is restored
    assert model.weight.grad is None  # nothing was backpropagated
    # the batch size does not change the (points-weighted) mean
    one_batch = HeldOutBitsPerByte(points=10, batch_size=64).score(model, program, {"n": 100})
    assert score == pytest.approx(one_batch, rel=1e-6)
    # by hand
    points = torch.stack([program.data_point({}, i) for i in range(90, 100)])
    with torch.no_grad():
        want = float(program.loss(model, points)) / math.log(2)
    assert score == pytest.approx(want, rel=1e-6)


def test_small_dataset_uses_every_point() -> None:
    program = CountingProgram()
    HeldOutBitsPerByte(points=64).score(bigram(torch.zeros(256, 256)), program, {"n": 5})
    assert program.asked == [0, 1, 2, 3, 4]


def test_failures() -> None:
    model = bigram(torch.zeros(256, 256))
    with pytest.raises(FormatError, match="expected dataset_size >= 1, got 0"):
        HeldOutBitsPerByte().score(model, CountingProgram(), {"n": 0})
    broken = bigram(torch.full((256, 256), math.nan))
    broken.eval()
    with pytest.raises(CheckUnavailable, match=r"expected a finite loss, got nan on points 0\.\.4"):
        HeldOutBitsPerByte().score(broken, CountingProgram(), {"n": 5})
    assert not broken.training  # restored after the failure too
    with pytest.raises(ParameterError, match="points: expected an integer in 1"):
        HeldOutBitsPerByte(points=0)


def test_satisfies_the_protocol() -> None:
    assert isinstance(HeldOutBitsPerByte(), Benchmark)
    assert HeldOutBitsPerByte.name == "bits_per_byte"
