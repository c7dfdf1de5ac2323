"""Data-property estimation: the exploit-code classifier and Clopper-Pearson bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from computewatch.errors import FormatError, ParameterError
from computewatch.rules import (
    Classifier,
    ExploitCodeClassifier,
    PropertyEstimate,
    clopper_pearson,
    estimate_property,
)


class FlagsOnes:
    """Flags the points equal to b"1" (simulated data with a known rate)."""

    name = "ones"

    def flags(self, point: bytes) -> bool:
        return point == b"1"


@pytest.mark.parametrize(
    ("point", "markers"),
    [
        (b"import os; os.system('id')", ("os-command",)),
        (b"os.popen(cmd).read()", ("os-command",)),
        (b"os.execve('/bin/sh', ['sh'], env)", ("os-command", "shell-path")),
        (b"p = subprocess.Popen(['nc', '-e'])", ("subprocess",)),
        (b"subprocess.check_output(payload, shell=True)", ("subprocess",)),
        (b"import pty; pty.spawn('/bin/bash')", ("shell-path", "pty-spawn")),
        (b"exec(base64.b64decode(blob))", ("dynamic-code",)),
        (b"x = eval(user_input)", ("dynamic-code",)),
        (b"__import__('os').system('ls')", ("dynamic-code",)),
        (
            b"s = socket.socket(AF_INET, SOCK_STREAM); s.connect((host, 4444))",
            ("socket-connect",),
        ),
    ],
)
def test_exploit_markers_are_flagged(point: bytes, markers: tuple[str, ...]) -> None:
    classifier = ExploitCodeClassifier()
    assert classifier.flags(point)
    assert classifier.matched_markers(point) == markers


@pytest.mark.parametrize(
    "point",
    [
        b"model.eval()\nwith torch.no_grad():",  # eval as a method: not flagged
        b"self.exec(query)",
        b"evaluate(model)",
        b"OS.SYSTEM('x')",  # case-sensitive
        b"s = socket.socket(AF_INET, SOCK_STREAM)\ns.bind(('', 80))",  # no connect
        b"db.connect(url)",
        b"",
        b"def f(x):\n    return x + 1\n",
        bytes(range(256)),
    ],
)
def test_harmless_points_are_not_flagged(point: bytes) -> None:
    assert not ExploitCodeClassifier().flags(point)


def test_classifiers_satisfy_the_protocol() -> None:
    assert isinstance(ExploitCodeClassifier(), Classifier)
    assert isinstance(FlagsOnes(), Classifier)
    assert ExploitCodeClassifier.name == "exploit_code"


def test_estimate_counts_and_accepts_bytes_like_points() -> None:
    points: list[Any] = [b"1", bytearray(b"0"), memoryview(b"1"), b"0"]
    est = estimate_property(points, FlagsOnes())
    assert (est.sampled, est.flagged, est.estimate) == (4, 2, 0.5)
    assert 0.0 < est.lower < 0.5 < est.upper < 1.0
    assert est.to_dict() == {
        "estimate": 0.5,
        "lower": est.lower,
        "upper": est.upper,
        "sampled": 4,
        "flagged": 2,
    }


def test_known_clopper_pearson_values() -> None:
    # 0 of n: upper = 1 - (alpha/2)^(1/n); n of n: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, 72, 0.95) == pytest.approx((0.0, 1 - 0.025 ** (1 / 72)))
    assert clopper_pearson(10, 10, 0.95) == pytest.approx((0.025 ** (1 / 10), 1.0))
    # a textbook value: 5 of 20 at 95% is [0.0866, 0.4910]
    lower, upper = clopper_pearson(5, 20, 0.95)
    assert lower == pytest.approx(0.0866, abs=1e-4)
    assert upper == pytest.approx(0.4910, abs=1e-4)


def test_zero_flagged_gives_lower_zero_and_all_flagged_upper_one() -> None:
    none = estimate_property([b"0"] * 100, FlagsOnes())
    assert none.lower == 0.0
    assert none.estimate == 0.0
    assert none.upper == pytest.approx(1 - 0.025 ** (1 / 100))
    every = estimate_property([b"1"] * 100, FlagsOnes())
    assert every.upper == 1.0
    assert every.estimate == 1.0


def test_72_clean_points_get_under_five_percent() -> None:
    # the example rule bans an upper bound above 5%: the sample size that needs
    assert estimate_property([b"0"] * 71, FlagsOnes()).upper > 0.05
    assert estimate_property([b"0"] * 72, FlagsOnes()).upper < 0.05


@pytest.mark.parametrize(("rate", "n"), [(0.02, 60), (0.1, 40), (0.5, 25)])
def test_interval_covers_the_truth_at_the_right_rate(rate: float, n: int) -> None:
    rng = np.random.default_rng(2303)
    trials = 400
    covered = 0
    for _ in range(trials):
        points = [b"1" if x else b"0" for x in rng.random(n) < rate]
        est = estimate_property(points, FlagsOnes(), confidence=0.95)
        covered += est.lower <= rate <= est.upper
    # Clopper-Pearson is conservative: coverage >= 95% in expectation; allow for the
    # binomial noise of 400 trials (3 standard deviations of 1.1%).
    assert covered / trials >= 0.95 - 0.033


def test_higher_confidence_gives_a_wider_interval() -> None:
    points = [b"1"] * 3 + [b"0"] * 97
    narrow = estimate_property(points, FlagsOnes(), confidence=0.8)
    wide = estimate_property(points, FlagsOnes(), confidence=0.99)
    assert wide.lower < narrow.lower <= narrow.upper < wide.upper


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_bounds_are_ordered_and_in_unit_interval(counts: tuple[int, int]) -> None:
    flagged, sampled = counts
    lower, upper = clopper_pearson(flagged, sampled, 0.95)
    assert 0.0 <= lower <= flagged / sampled <= upper <= 1.0
    PropertyEstimate(flagged / sampled, lower, upper, sampled, flagged)  # valid
    if 0 < flagged < sampled:
        assert lower == pytest.approx(stats.beta.ppf(0.025, flagged, sampled - flagged + 1))


def test_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="property 'ones': expected at least one data point"):
        estimate_property([], FlagsOnes())
    with pytest.raises(ParameterError, match="confidence: expected a probability"):
        estimate_property([b"1"], FlagsOnes(), confidence=1.0)
    with pytest.raises(FormatError, match=r"data point 1: expected bytes, got str"):
        estimate_property([b"1", "0"], FlagsOnes())  # type: ignore[list-item]

    class Sloppy:
        name = "sloppy"

        def flags(self, point: bytes) -> bool:
            return len(point)  # type: ignore[return-value]

    with pytest.raises(FormatError, match="classifier 'sloppy' on data point 0: expected a bool"):
        estimate_property([b"1"], Sloppy())
