"""The Prover's side of a step audit: its state after step s, from its own checkpoints.

`answer_challenge` loads the Prover's program into the calling process (it
is the Prover's tool, like `Replayer`; `verify_transcript` never calls it
itself, only through the `Challenge` it is given). For each challenged
step count it replays from the nearest checkpoint at or before it, with
the batches the Prover really trained on (`batches`, default the
transcript's committed points), and writes the state in checkpoint format
to `out`; the steps of one interval are answered in one pass through it,
so an answer costs at most the run's steps. A cheating Prover answers with
its real trajectory: that is what its commitments say, so the audit can
only catch it by replaying a step whose outcome is not what training on
the committed data gives.

Example::

    >>> answers = answer_challenge(run_dir, [37, 211], out)  # doctest: +SKIP
    >>> sorted(answers)  # doctest: +SKIP
    [37, 211]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from computewatch.datacenter import TranscriptPaths, save_checkpoint
from computewatch.verification._reader import TranscriptReader
from computewatch.verification._replay import Replayer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import torch

__all__ = ["answer_challenge", "prover_challenge"]


def answer_challenge(
    run_dir: str | Path,
    steps: Iterable[int],
    out: str | Path,
    *,
    batches: Callable[[TranscriptReader, int], torch.Tensor] | None = None,
) -> dict[int, Path]:
    """Regenerate the state after each of `steps` steps; the files by step count."""
    import torch  # noqa: PLC0415

    run_dir = Path(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reader = TranscriptReader.open(run_dir, TranscriptPaths(run_dir).report)
    replayer = Replayer(reader)
    if batches is not None:
        source = batches
        replayer.batch = lambda step: source(reader, step)  # type: ignore[method-assign]
    answers: dict[int, Path] = {}
    ckpts = reader.checkpoint_steps
    at = -1  # the step count the replayer's state is at (none yet)
    for step in sorted(set(steps)):
        base = max(c for c in ckpts if c <= step)
        if base <= at:  # one pass per interval: go on from the last answer
            replayer.advance(at, step)
        else:
            replayer.run(base, step)
        at = step
        state, groups = replayer.trainer.checkpoint_state()
        path = out / f"state-{step}.safetensors"
        save_checkpoint(
            path,
            step=step,
            weights=replayer.trainer.flat,
            optimizer_state=state,
            param_groups=groups,
            rng_state=torch.get_rng_state(),
            layout_digest=str(reader.layout.digest()),
        )
        answers[step] = path
    return answers


def prover_challenge(
    run_dir: str | Path,
    out: str | Path,
    *,
    batches: Callable[[TranscriptReader, int], torch.Tensor] | None = None,
) -> Callable[[tuple[int, ...]], dict[int, Path]]:
    """A `Challenge` answered by `answer_challenge` on the Prover's folder."""

    def challenge(steps: tuple[int, ...]) -> dict[int, Path]:
        return answer_challenge(run_dir, steps, out, batches=batches)

    return challenge
