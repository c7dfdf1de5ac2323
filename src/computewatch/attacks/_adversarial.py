"""The adversarial-example spoof of Zhang et al. 2022, run against this protocol.

Zhang et al. ("Adversarial examples for proof-of-learning", IEEE S&P 2022)
forge a Proof-of-Learning without doing the training: starting from an
initialization that passes distribution checks, they *craft* the data of
every step (small perturbations of innocent-looking points) so that
replaying the step on the crafted data lands where the forger wants the
next checkpoint, until the path arrives at the stolen final weights.

Here the forger is a Prover who really trained a secret model (the chips
logged its precommitment and snapshots of its weights) and wants to claim
that the run trained on innocuous text instead. `AdversarialExamples`:

1. replays its own secret run step by step (the target path, which passes
   through every ω the chips logged);
2. starts from the same W_0 (a genuine draw of the initializer, so it
   matches the expected distribution exactly) and, for every step, edits
   innocent cover text (windows of another run's stdlib data) by greedy
   byte flips guided by the gradient of the *exact* objective (HotFlip with
   a differentiable AdamW step, double back-propagation through the model):
   the distance between the weights after a real optimizer step on the
   crafted batch and the secret path's weights after that step;
3. ships a training program whose data set is the crafted points, trains it
   for real from that W_0 (so every claimed step replays exactly), grafts the
   chips' snapshot claims and ω copies in, and recommits.

Two things stop it in this protocol. By construction the crafted data did
not exist before W_0 did, while the protocol derives W_0 from the
precommitment of the data order, which every chip logged before step 0: the
forger either claims the chips' logged precommitment (and then its data
points do not hash to it) or its own (which no chip logged, and whose seed
does not give the W_0 it used). Independently of that, replay tolerance here
is calibrated from noise twins, orders of magnitude below what byte flips
in a few hundred bytes per step can steer 30k weights to: the attempt records
how far the crafted path ends from the secret one, in units of the
Verifier's ε (``snapshot_distance_over_eps_min``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 - the usual alias
from torch.nn.attention import SDPBackend, sdpa_kernel

from computewatch.attacks._harness import (
    EXAMPLE,
    SCALE,
    Attempt,
    Detection,
    HonestRun,
    Scale,
    failed_checks,
    recommit,
)
from computewatch.datacenter import DataSchedule, Trainer, TranscriptPaths, train
from computewatch.verification import (
    CheckStatus,
    Replayer,
    TranscriptReader,
    verify_transcript,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from computewatch.verification import VerificationPolicy

__all__ = ["AdversarialExamples", "CraftStats", "craft_batch", "relaxed_loss"]

#: Bytes a crafted point may contain: printable ASCII and newline (it must
#: still pass for source text).
_PRINTABLE = torch.tensor([10, *range(32, 127)])
_ADAM_EPS = 1e-8


def relaxed_loss(model: torch.nn.Module, onehot: torch.Tensor) -> torch.Tensor:
    """The example program's loss on a batch given as one-hot bytes.

    ``onehot`` is (batch, block_size + 1, 256); for exact one-hot rows this
    equals ``TinyGPTProgram.loss`` (inputs are the first block_size bytes,
    targets the last), and it is differentiable in ``onehot``.
    """
    m: Any = model  # the example program's TinyGPT
    emb = onehot[:, :-1] @ m.wte.weight
    x = emb + m.wpe(torch.arange(emb.shape[1]))
    for block in m.blocks:
        x = block(x)
    logits = m.ln_f(x) @ m.wte.weight.T
    return -(onehot[:, 1:] * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def _adamw(
    trainer: Trainer, step: int, grad: torch.Tensor
) -> torch.Tensor:  # the weights after one AdamW step on `grad`, differentiable in it
    config = trainer.config
    lr = trainer.program.learning_rate(config, step)
    b1, b2, wd = float(config["beta1"]), float(config["beta2"]), float(config["weight_decay"])
    state = trainer.optimizer.state.get(trainer.shard, {})
    n = int(state["step"]) + 1 if "step" in state else 1
    m_prev = state.get("exp_avg", torch.zeros_like(grad))
    v_prev = state.get("exp_avg_sq", torch.zeros_like(grad))
    m = b1 * m_prev + (1 - b1) * grad
    v = b2 * v_prev + (1 - b2) * grad * grad
    # the tiny constant keeps sqrt differentiable where a gradient is exactly 0
    denom = (v + 1e-30).sqrt() / (1 - b2**n) ** 0.5 + _ADAM_EPS
    weights = trainer.flat.detach() * (1 - lr * wd)
    out: torch.Tensor = weights - (lr / (1 - b1**n)) * m / denom
    return out


def _flat_grad(trainer: Trainer, loss: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    params = [p for _, p in trainer.model.named_parameters()]
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return torch.cat([g.reshape(-1) for g in grads])


def _objective(trainer: Trainer, step: int, batch: torch.Tensor, target: torch.Tensor) -> float:
    """Squared distance to `target` after a (simulated) step on the real loss."""
    loss = trainer.program.loss(trainer.model, batch)
    grad = _flat_grad(trainer, loss, create_graph=False)
    return float((_adamw(trainer, step, grad) - target).square().sum())


@dataclass(frozen=True)
class CraftStats:
    """How one step's crafting went.

    Attributes:
        cover: squared distance to the target after a step on the cover text.
        crafted: the same after a step on the crafted batch.
        changed: fraction of the batch's bytes the forger changed.
    """

    cover: float
    crafted: float
    changed: float


def craft_batch(
    trainer: Trainer,
    step: int,
    cover: torch.Tensor,
    target: torch.Tensor,
    *,
    rounds: int = 6,
    candidates: int = 8,
    max_changed: float = 0.25,
) -> tuple[torch.Tensor, CraftStats]:
    """Edit `cover` so that one optimizer step on it lands close to `target`.

    Greedy HotFlip: each round ranks every (position, printable byte) flip
    by the first-order change it makes to the objective (its gradient through
    a one-hot relaxation and a differentiable AdamW step), tries the best
    `candidates` flips at distinct positions exactly, and keeps the best one
    that improves. At most `max_changed` of the bytes are changed. The
    trainer's state is not modified.
    """
    batch = cover.clone()
    original = cover.long()
    best = start = _objective(trainer, step, batch, target)
    allowed = torch.zeros(256, dtype=torch.bool)
    allowed[_PRINTABLE] = True
    cap = int(max_changed * batch.numel())
    for _ in range(rounds):
        onehot = F.one_hot(batch.long(), 256).float().requires_grad_(True)  # noqa: FBT003
        # the fused CPU attention kernels have no double backward; the math one does
        with sdpa_kernel(SDPBackend.MATH):
            loss = relaxed_loss(trainer.model, onehot)
            grad = _flat_grad(trainer, loss, create_graph=True)
        distance = (_adamw(trainer, step, grad) - target).square().sum()
        (d_onehot,) = torch.autograd.grad(distance, onehot)
        score = d_onehot - d_onehot.gather(-1, batch.long().unsqueeze(-1))
        score[..., ~allowed] = torch.inf
        score.scatter_(-1, batch.long().unsqueeze(-1), torch.inf)  # no-op flips
        changed = batch.long() != original
        if int(changed.sum()) >= cap:  # only re-edit bytes already changed
            score[~changed] = torch.inf
        per_position, value = score.min(dim=-1)
        order = torch.argsort(per_position.reshape(-1))[:candidates]
        improved = None
        for flat_pos in order.tolist():
            if not torch.isfinite(per_position.reshape(-1)[flat_pos]):
                break
            i, j = divmod(flat_pos, batch.shape[1])
            trial = batch.clone()
            trial[i, j] = int(value[i, j])
            obj = _objective(trainer, step, trial, target)
            if obj < best:
                best, improved = obj, trial
        if improved is None:
            break
        batch = improved
    changed_fraction = float((batch.long() != original).float().mean())
    return batch, CraftStats(cover=start, crafted=best, changed=changed_fraction)


_PROGRAM_TAIL = '''

# --- the forger's data set: crafted points (Zhang et al. 2022 spoof) ---
_CRAFTED = bytes.fromhex(
    "{hex}"
)


class CraftedProgram(TinyGPTProgram):
    """The example program, with the crafted points as its data set."""

    def dataset_size(self, config: Mapping[str, Any]) -> int:
        return len(_CRAFTED) // (int(config["block_size"]) + 1)

    def data_point(self, config: Mapping[str, Any], index: int) -> torch.Tensor:
        n = int(config["block_size"]) + 1
        return torch.frombuffer(bytearray(_CRAFTED[index * n : (index + 1) * n]), dtype=torch.uint8)


PROGRAM = CraftedProgram()
'''


def _crafted_program(path: Path, points: bytes) -> None:
    # annotations are not evaluated (the program has `from __future__ import annotations`)
    path.write_text(EXAMPLE.read_text() + _PROGRAM_TAIL.format(hex=points.hex()))


class AdversarialExamples:
    """Zhang et al. 2022: crafted data that steers replay to the chips' ω."""

    name = "adversarial-examples-zhang"
    threat = "App. A (Zhang et al. 2022): crafted data steering replay to the secret weights"
    expected = ("precommit-logged", "init", "snapshot", "segment")
    needs_base = True

    def __init__(self, rounds: int = 6, candidates: int = 8, max_changed: float = 0.25) -> None:
        """Crafting effort: HotFlip `rounds` per step of a default-scale run.

        Longer runs get proportionally fewer rounds per step (at least one),
        `candidates` flips are tried per round, and at most `max_changed` of
        each batch's bytes are edited.
        """
        self.rounds = rounds
        self.candidates = candidates
        self.max_changed = max_changed

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Craft every step's data toward the secret path, train it, graft the claims."""
        if len(bases) < 2:  # noqa: PLR2004
            msg = "the adversarial-example spoof needs a secret run and a cover run"
            raise ValueError(msg)
        secret, cover = bases
        reader = TranscriptReader.open(secret.run_dir, TranscriptPaths(secret.run_dir).report)
        steps = reader.steps
        _, path = Replayer(reader).run(0, steps, capture=range(steps + 1))
        cover_replayer = Replayer(
            TranscriptReader.open(cover.run_dir, TranscriptPaths(cover.run_dir).report)
        )
        trainer = Trainer(reader.program, reader.config)
        trainer.load(reader.checkpoint(0))
        # the same crafting effort per run at every scale (at least one round a step)
        rounds = max(1, round(self.rounds * SCALE.steps / scale.steps))
        w0 = trainer.flat.detach().clone()
        crafted: list[torch.Tensor] = []
        stats: list[CraftStats] = []
        for step in range(steps):
            batch, st = craft_batch(
                trainer,
                step,
                cover_replayer.batch(step),
                path[step + 1],
                rounds=rounds,
                candidates=self.candidates,
                max_changed=self.max_changed,
            )
            trainer.step(step, batch)
            crafted.append(batch)
            stats.append(st)
        final_distance = float((trainer.flat - path[steps]).norm())
        honest_distance = float((path[steps] - path[0]).norm())
        # the data set: each crafted point where the schedule will read it
        run_id = reader.run_id
        seed = reader.schedule.seed
        per_point = crafted[0].shape[1]
        batch_size = crafted[0].shape[0]
        schedule = DataSchedule(steps * batch_size, batch_size, steps, seed)
        data = bytearray(steps * batch_size * per_point)
        for step, batch in enumerate(crafted):
            for j, index in enumerate(schedule.indices(step)):
                data[index * per_point : (index + 1) * per_point] = bytes(batch[j].tolist())
        folder = workdir / f"{self.name}-{trial}"
        folder.mkdir(parents=True, exist_ok=True)
        program = folder / "crafted_program.py"
        _crafted_program(program, bytes(data))
        run_dir = folder / "run"
        spec = scale.spec(run_id=run_id, program_path=program, data_seed=seed)
        train(
            spec,
            run_dir,
            chip_serials=[str(secret.chip.serial)],
            init=lambda *_a, **_k: w0.clone(),  # the crafted W_0, not the seeded one
        )
        _graft_claims(secret, run_dir)
        recommit(run_dir)
        return Attempt(
            run=HonestRun(run_dir, secret.chip),
            data={
                "final_distance": final_distance,
                "honest_distance": honest_distance,
                "cover_objective_mean": float(np.mean([s.cover for s in stats])),
                "crafted_objective_mean": float(np.mean([s.crafted for s in stats])),
                "bytes_changed": float(np.mean([s.changed for s in stats])),
            },
        )

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` against the secret chip's log; also how close replay came."""
        run = attempt.run
        if run is None:  # pragma: no cover - create always builds a run
            msg = "this attempt has no transcript"
            raise ValueError(msg)
        verdict = verify_transcript(
            run.run_dir, TranscriptPaths(run.run_dir).report, run.evidence(), policy, rng
        )
        # segment replays of the forger's own checkpoints match exactly (the
        # crafted data really leads there); only the chips' ω show the gap
        ratios = [
            float(c.metrics["distance"]) / float(c.metrics["epsilon"])
            for c in verdict.checks
            if c.name.startswith("snapshot:")
            and "distance" in c.metrics
            and float(c.metrics["epsilon"]) > 0
        ]
        if ratios:
            attempt.data["snapshot_distance_over_eps_min"] = min(ratios)
        exact = [  # ε = 0 (ADR 0033): the distance itself is how far outside
            float(c.metrics["distance"])
            for c in verdict.checks
            if c.name.startswith("snapshot:")
            and "distance" in c.metrics
            and float(c.metrics["epsilon"]) == 0
        ]
        if exact:
            attempt.data["snapshot_distance_min_exact"] = min(exact)
        return Detection(
            detected=not verdict.passed,
            checks=failed_checks(verdict),
            compute_fraction=verdict.compute_fraction,
            detail="; ".join(c.detail for c in verdict.checks if c.status is CheckStatus.FAIL)[
                :300
            ],
        )


def _graft_claims(secret: HonestRun, run_dir: Path) -> None:
    """Claim the secret chip's snapshots (and ship its ω copies) in `run_dir`."""
    src, dst = TranscriptPaths(secret.run_dir), TranscriptPaths(run_dir)
    name = f"{secret.chip.serial}.json"
    doc: dict[str, Any] = json.loads((src.chips / name).read_text())
    dst.chips.mkdir(parents=True, exist_ok=True)
    (dst.chips / name).write_text(json.dumps(doc))
    dst.snapshots.mkdir(parents=True, exist_ok=True)
    for f in src.snapshots.iterdir():
        shutil.copyfile(f, dst.snapshots / f.name)
