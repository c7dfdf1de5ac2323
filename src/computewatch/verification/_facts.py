"""Verified facts for the rules, computed inside the trusted cluster (paper §2.1, §5.2).

After a transcript passes (or fails) verification, the cluster computes the
facts the rules speak of, from the committed transcript and the Prover's raw
data, without letting any of it out:

* ``training``: FLOPs (the program's FLOPs per point x points) and
  chip-hours (chips x the recorded training time);
* ``data``: for each classifier, the fraction of a random sample of the
  committed data points it flags, with an exact confidence interval (each
  raw point is checked against its committed hash first);
* ``hyper``: the run's configuration scalars, plus derived ones
  (``rl_fraction``: 0 for supervised programs);
* ``benchmarks``: each benchmark the rule file declares, scored on the
  final checkpoint by a replay worker (the model is the Prover's code),
  with the resources the rule file pins staged as job inputs;
* ``declared`` (from the Verifier's records) and ``verified``.

Only the rules' outcomes leave the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from computewatch.datacenter import point_hash
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from computewatch.verification._prover import ProverCalls
    from computewatch.verification._reader import TranscriptReader

__all__ = ["compute_facts"]

#: Data points sampled per classifier.
DATA_SAMPLE = 256


def _sampled_points(
    reader: TranscriptReader, prover: ProverCalls, samples: Sequence[tuple[int, int, int]]
) -> list[bytes]:
    out = []
    for step, j, index in samples:
        point = prover.point(index)
        if point is None or point_hash(point) != reader.points(step)[j]:
            msg = f"step {step} point {j}: the raw data does not match its committed hash"
            raise IntegrityError(msg)
        out.append(point.contiguous().numpy().tobytes())
    return out


def compute_facts(
    reader: TranscriptReader,
    prover: ProverCalls,
    *,
    verified: bool,
    declared: Mapping[str, Any],
    samples: Sequence[tuple[int, int, int]],
    classifiers: Sequence[Any],
    scores: Mapping[str, float],
) -> dict[str, Any]:
    """The facts of one run, in the rules' schema (`scores`: the declared benchmarks' scores).

    A declared benchmark that could not be scored is absent from `scores`
    (and a failed check in the verdict): a rule naming it cannot be
    evaluated and fails closed.
    """
    from computewatch.rules import estimate_property  # noqa: PLC0415

    config = reader.config
    points = reader.schedule.batch_size * reader.steps
    per_point = (prover.info or {}).get("flops_per_point")
    if not isinstance(per_point, float | int) or isinstance(per_point, bool):
        msg = f"replay worker: no FLOPs per point ({prover.info_failure})"
        raise FormatError(msg)
    flops = float(per_point) * points
    metrics = reader.metrics
    seconds = 0.0
    if metrics:
        seconds = (
            float(metrics[-1]["time"]) - float(metrics[0]["time"]) + float(metrics[0]["seconds"])
        )
    data = {}
    if classifiers:
        sample = _sampled_points(reader, prover, samples)
        for classifier in classifiers:
            est = estimate_property(sample, classifier)
            data[classifier.name] = {
                "estimate": est.estimate,
                "lower": est.lower,
                "upper": est.upper,
                "sampled": est.sampled,
                "flagged": est.flagged,
            }
    hyper: dict[str, Any] = {
        k: v for k, v in config.items() if isinstance(v, bool | int | float | str)
    }
    hyper.setdefault("rl_fraction", 0.0)
    return {
        "run": {"id": reader.run_id, "chips": reader.world_size, "steps": reader.steps},
        "training": {"flops": float(flops), "chip_hours": reader.world_size * seconds / 3600.0},
        "data": data,
        "hyper": hyper,
        "benchmarks": dict(scores),
        "declared": {
            "reported": bool(declared.get("reported", False)),
            "approvals": [str(a) for a in declared.get("approvals", [])],
        },
        "verified": verified,
    }
