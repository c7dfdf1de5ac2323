"""Data properties: estimate a fraction from a sample with a confidence bound.

A rule such as "no more than 5% of the training data is exploit code" (paper
§2.1) cannot be checked on every data point, so the trusted cluster draws a
uniform random sample of the run's points, runs a `Classifier` on each, and
reports the fraction flagged with an exact Clopper-Pearson interval. The
rules see it as `data.<name>.{estimate, lower, upper, sampled, flagged}`;
a ban is usually written on the upper bound, so that a small sample cannot
pass a rule by luck.

The sample itself is the caller's job: draw it with a recorded seed
(`numpy.random.Generator`) so the estimate can be recomputed. Data points
are bytes; a tensor point is passed as `tensor.numpy().tobytes()`.

Example::

    >>> from computewatch.rules import ExploitCodeClassifier, estimate_property
    >>> points = [b"print('hi')", b"os.system('rm -rf /')", b"x = 1", b"y = 2"]
    >>> est = estimate_property(points, ExploitCodeClassifier())
    >>> (est.flagged, est.sampled, est.estimate)
    (1, 4, 0.25)
    >>> 0.0 < est.lower < 0.25 < est.upper < 1.0
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from computewatch._validate import probability
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Classifier", "ExploitCodeClassifier", "PropertyEstimate", "estimate_property"]


@runtime_checkable
class Classifier(Protocol):
    """Decides whether one data point has a property (pluggable).

    Implementations must be deterministic: the trusted cluster may recompute
    an estimate and must get the same answer.
    """

    #: The property's name; the estimate appears as `data.<name>` in rules.
    name: str

    def flags(self, point: bytes) -> bool:
        """Return True if `point` has the property."""
        ...


@dataclass(frozen=True, slots=True)
class PropertyEstimate:
    """The fraction of a sample that a classifier flagged, with its interval.

    Attributes:
        estimate: `flagged / sampled`.
        lower: Lower end of the two-sided Clopper-Pearson interval (0 if none flagged).
        upper: Upper end of the interval (1 if all were flagged).
        sampled: How many points were classified (>= 1).
        flagged: How many of them were flagged.
    """

    estimate: float
    lower: float
    upper: float
    sampled: int
    flagged: int

    def __post_init__(self) -> None:
        """Check `0 <= lower <= estimate <= upper <= 1` and `0 <= flagged <= sampled`."""
        for name in ("sampled", "flagged"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"property estimate {name}: expected a whole number >= 0, got {value!r}"
                raise ParameterError(msg)
        if self.sampled < 1 or self.flagged > self.sampled:
            msg = (
                "property estimate: expected 0 <= flagged <= sampled and sampled >= 1, "
                f"got flagged={self.flagged}, sampled={self.sampled}"
            )
            raise ParameterError(msg)
        for name in ("estimate", "lower", "upper"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0
            ):
                msg = f"property estimate {name}: expected a number in [0, 1], got {value!r}"
                raise ParameterError(msg)
            object.__setattr__(self, name, float(value))
        if not self.lower <= self.estimate <= self.upper:
            msg = (
                "property estimate: expected lower <= estimate <= upper, got "
                f"{self.lower!r} <= {self.estimate!r} <= {self.upper!r}"
            )
            raise ParameterError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The estimate as JSON-ready data (the `data.<name>` fact)."""
        return {
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "sampled": self.sampled,
            "flagged": self.flagged,
        }


def clopper_pearson(flagged: int, sampled: int, confidence: float) -> tuple[float, float]:
    """The exact two-sided binomial interval for `flagged` out of `sampled`.

    Each side has error `(1 - confidence) / 2`: the lower end is the
    `alpha/2` quantile of Beta(k, n-k+1) and the upper end the `1-alpha/2`
    quantile of Beta(k+1, n-k); the ends are 0 and 1 when k = 0 or k = n.
    """
    # betaincinv(a, b, q) is the q quantile of Beta(a, b) (scipy.stats.beta.ppf,
    # without importing scipy.stats, which takes seconds); imported here so that
    # loading a rule file (every `computewatch` command) does not import scipy
    from scipy import special  # noqa: PLC0415

    alpha = 1.0 - confidence
    lower = (
        0.0
        if flagged == 0
        else float(special.betaincinv(flagged, sampled - flagged + 1, alpha / 2))
    )
    upper = (
        1.0
        if flagged == sampled
        else float(special.betaincinv(flagged + 1, sampled - flagged, 1 - alpha / 2))
    )
    estimate = flagged / sampled
    # The quantiles bracket k/n mathematically; clamp away floating-point dust.
    return min(lower, estimate), max(upper, estimate)


def estimate_property(
    points: Iterable[bytes], classifier: Classifier, confidence: float = 0.95
) -> PropertyEstimate:
    """Classify every point and estimate the flagged fraction with its interval.

    Args:
        points: A uniform random sample of the run's data points, as bytes.
        classifier: Decides each point; its `name` is the fact's name.
        confidence: Coverage of the two-sided Clopper-Pearson interval.

    Returns:
        The estimate; `lower`/`upper` cover the true fraction with
        probability at least `confidence`.

    Raises:
        ParameterError: `confidence` is not in (0, 1), or there are no points.
        FormatError: a point is not bytes or the classifier did not return a bool.
    """
    confidence = probability("confidence", confidence)
    name = getattr(classifier, "name", type(classifier).__name__)
    sampled = flagged = 0
    for index, item in enumerate(points):
        point: object = item  # callers' data: check it whatever its annotation says
        if not isinstance(point, bytes | bytearray | memoryview):
            msg = (
                f"data point {index}: expected bytes, got {type(point).__name__} "
                "(pass a tensor as tensor.numpy().tobytes())"
            )
            raise FormatError(msg)
        verdict: object = classifier.flags(bytes(point))
        if not isinstance(verdict, bool):
            msg = (
                f"classifier {name!r} on data point {index}: expected a bool, "
                f"got {type(verdict).__name__}"
            )
            raise FormatError(msg)
        sampled += 1
        flagged += verdict
    if sampled == 0:
        msg = f"property {name!r}: expected at least one data point, got none"
        raise ParameterError(msg)
    lower, upper = clopper_pearson(flagged, sampled, confidence)
    return PropertyEstimate(flagged / sampled, lower, upper, sampled, flagged)


class ExploitCodeClassifier:
    """Flags data points that contain markers typical of exploit code.

    A toy, pluggable stand-in for a real classifier (paper §2.1's "contains
    exploit code"): a case-sensitive search of the raw bytes for a small,
    documented set of process-spawning, shell and code-execution markers.
    Anything that implements `Classifier` can replace it. It both misses
    real exploits (anything obfuscated) and flags harmless code (Python's
    own `subprocess.py` contains `subprocess.Popen`), so the rule
    thresholds built on it are demonstrations, not policy.

    The markers (bytes regular expressions, `MARKERS`):

    * `os.system(`, `os.popen(`, `os.exec*(`: run a shell command or program.
    * `subprocess.Popen`, `subprocess.call(` / `run(` / `check_output(` /
      `check_call(`: spawn a process.
    * `/bin/sh`, `/bin/bash`: a shell path.
    * `pty.spawn(`: an interactive shell, as in reverse shells.
    * bare calls of the builtins exec, eval and __import__: run code built at run
      time (`model.eval()` and `x.exec(` are not matched: the name must not
      follow a letter, digit, `_` or `.`).
    * `socket.socket(` together with `.connect(` in the same point: an
      outgoing connection, the other half of a reverse shell.
    """

    name = "exploit_code"

    #: (label, pattern) pairs; any match flags the point.
    MARKERS: ClassVar[tuple[tuple[str, re.Pattern[bytes]], ...]] = (
        ("os-command", re.compile(rb"\bos\.(?:system|popen|exec[lv]p?e?)\(")),
        (
            "subprocess",
            re.compile(rb"\bsubprocess\.(?:Popen|call\(|run\(|check_output\(|check_call\()"),
        ),
        ("shell-path", re.compile(rb"/bin/(?:ba)?sh\b")),
        ("pty-spawn", re.compile(rb"\bpty\.spawn\(")),
        ("dynamic-code", re.compile(rb"(?<![\w.])(?:exec|eval|__import__)\(")),
    )
    _SOCKET = re.compile(rb"\bsocket\.socket\(")
    _CONNECT = re.compile(rb"\.connect\(")

    def matched_markers(self, point: bytes) -> tuple[str, ...]:
        """The labels of the markers found in `point` (for explanations)."""
        found = [label for label, pattern in self.MARKERS if pattern.search(point)]
        if self._SOCKET.search(point) and self._CONNECT.search(point):
            found.append("socket-connect")
        return tuple(found)

    def flags(self, point: bytes) -> bool:
        """Return True if any marker occurs in `point`."""
        return bool(self.matched_markers(point))
