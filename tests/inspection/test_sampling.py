"""The sample: reproducible from the records, chosen by neither party alone."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.errors import FormatError, IntegrityError
from computewatch.inspection import SampleDraw, commit_nonce, draw_sample, verify_draw

CHIPS = [f"CW-{i:04d}" for i in range(40)]
ROOT = bytes(range(32))


def draw(v: bytes, p: bytes, *, root: bytes = ROOT, size: int = 5) -> SampleDraw:
    return draw_sample(
        CHIPS,
        size,
        verifier_nonce=v,
        verifier_commitment=commit_nonce("verifier", v),
        prover_nonce=p,
        prover_commitment=commit_nonce("prover", p),
        registry_root=root,
        period="2026-11",
    )


def test_reproducible_from_the_recorded_reveals_and_checkpoint() -> None:
    d = draw(secrets.token_bytes(32), secrets.token_bytes(32))
    assert len(set(d.chips)) == 5
    assert set(d.chips) <= set(CHIPS)
    again = SampleDraw.from_json(d.to_json())
    verify_draw(again)
    assert again.chips == d.chips
    forged = SampleDraw.from_json({**d.to_json(), "chips": sorted(CHIPS)[:5]})
    with pytest.raises(IntegrityError, match="does not recompute"):
        verify_draw(forged)


def test_a_party_cannot_change_its_nonce_after_committing() -> None:
    v, p = secrets.token_bytes(32), secrets.token_bytes(32)
    other = secrets.token_bytes(32)
    with pytest.raises(IntegrityError, match="prover's revealed nonce"):
        draw_sample(
            CHIPS,
            5,
            verifier_nonce=v,
            verifier_commitment=commit_nonce("verifier", v),
            prover_nonce=other,
            prover_commitment=commit_nonce("prover", p),
            registry_root=ROOT,
            period="p",
        )
    with pytest.raises(IntegrityError, match="verifier's revealed nonce"):
        draw_sample(
            CHIPS,
            5,
            verifier_nonce=other,
            verifier_commitment=commit_nonce("verifier", v),
            prover_nonce=p,
            prover_commitment=commit_nonce("prover", p),
            registry_root=ROOT,
            period="p",
        )


def test_neither_party_alone_chooses_the_sample() -> None:
    # A Prover who wants to avoid a given chip can only pick its own nonce
    # before it sees the Verifier's: for every one of its choices, the
    # Verifier's nonce still decides whether the chip is sampled, at the
    # sample's rate. The same holds the other way round.
    target = CHIPS[7]
    rate = 5 / len(CHIPS)
    for fixed_party in ("prover", "verifier"):
        fixed = secrets.token_bytes(32)
        hits = 0
        trials = 400
        for _ in range(trials):
            free = secrets.token_bytes(32)
            d = draw(free, fixed) if fixed_party == "prover" else draw(fixed, free)
            hits += target in d.chips
        # the other party's nonce alone moves the chip in and out of the sample
        assert 0 < hits < trials
        assert abs(hits / trials - rate) < 0.07
    # and the registry checkpoint moves it too
    v, p = secrets.token_bytes(32), secrets.token_bytes(32)
    assert {draw(v, p, root=bytes([i]) * 32).chips for i in range(20)} != {draw(v, p).chips}


def test_commitments_hide_the_nonce_and_bind_the_party() -> None:
    n = bytes(32)
    assert commit_nonce("verifier", n) != commit_nonce("prover", n)
    assert commit_nonce("verifier", n) != commit_nonce("verifier", bytes([1]) + bytes(31))


@given(size=st.integers(1, 40), seed=st.binary(min_size=32, max_size=32))
def test_draws_are_subsets_of_the_right_size(size: int, seed: bytes) -> None:
    d = draw(seed, bytes(32), size=size)
    assert len(d.chips) == size == len(set(d.chips))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"size": 0}, "sample size"),
        ({"size": 41}, "sample size"),
        ({"root": b"short"}, "registry root"),
    ],
)
def test_bad_draws(kw: dict[str, object], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        draw(bytes(32), bytes(32), **kw)  # type: ignore[arg-type]


def test_bad_nonces_and_duplicates() -> None:
    with pytest.raises(FormatError, match="32 bytes"):
        commit_nonce("verifier", b"short")
    with pytest.raises(FormatError, match="duplicates"):
        draw_sample(
            ["a", "a"],
            1,
            verifier_nonce=bytes(32),
            verifier_commitment=commit_nonce("verifier", bytes(32)),
            prover_nonce=bytes(32),
            prover_commitment=commit_nonce("prover", bytes(32)),
            registry_root=ROOT,
            period="p",
        )
