"""Landmark and chip in network namespaces of their own, over a veth pair, with tc netem delays.

Needs root (``ip netns``); skipped otherwise. The namespaces, the veth pair
and its private addresses (10.213.N.0/30) exist only for the test and are
removed in the fixture even when the test fails. No traffic leaves them.
Where the kernel has no ``sch_netem`` (containers often lack it), the netem
tests skip with what ``tc`` said; the relay test injects its delay in user
space instead and runs regardless.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from computewatch.chip import Chip
from computewatch.crypto import Envelope, SigningKey, VerifyingKey
from computewatch.supplychain import (
    Landmark,
    LicensedRegion,
    LocationStatus,
    RegionConstraint,
    check_location,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

_PORT = 47_013
#: 200 ms of round trip: wide enough that a CPU-starved CI machine (two Python
#: processes, one per namespace) never flags the chip next to the landmark.
RADIUS_KM = 20_000.0


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "ip netns needs root (CAP_NET_ADMIN)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    return None


#: Seconds a child process may take to start or finish: `python -m computewatch`
#: imports torch, which takes minutes on a starved machine.
_SLOW_S = 300


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=_SLOW_S)  # noqa: S603


@dataclass(frozen=True)
class Pair:
    landmark_ns: str
    chip_ns: str
    landmark_ip: str
    chip_dev: str


@pytest.fixture
def pair() -> Iterator[Pair]:
    why = _why_not()
    if why:
        pytest.skip(why)
    tag = f"{os.getpid() % 100_000}"
    lm, chip = f"cwloc-lm-{tag}", f"cwloc-chip-{tag}"
    dev_lm, dev_chip = f"cwl{tag}a", f"cwl{tag}b"
    net = f"10.213.{os.getpid() % 250}"
    try:
        _run("ip", "netns", "add", lm)
        _run("ip", "netns", "add", chip)
        _run(
            "ip",
            "link",
            "add",
            dev_lm,
            "netns",
            lm,
            "type",
            "veth",
            "peer",
            dev_chip,
            "netns",
            chip,
        )
        for ns, dev, ip in ((lm, dev_lm, f"{net}.1/30"), (chip, dev_chip, f"{net}.2/30")):
            _run("ip", "-n", ns, "addr", "add", ip, "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        yield Pair(lm, chip, f"{net}.1", dev_chip)
    finally:
        for ns in (lm, chip):  # deleting a namespace deletes its end of the veth pair
            _run("ip", "netns", "del", ns, check=False)


@dataclass
class Setup:
    folder: Path
    chip_key: VerifyingKey
    landmark: Landmark
    region: LicensedRegion
    landmark_key_file: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    maker = SigningKey.from_seed(b"m" * 32)
    with Chip.provision(tmp_path / "chip", "CW-NS-1", maker.verifying_key) as chip:
        chip_key = chip.public_key
    key = SigningKey.from_seed(b"n" * 32)
    key.save(tmp_path / "lm.key")
    landmark = Landmark("lm-ns", 50.11, 8.68, key.verifying_key)
    region = LicensedRegion("ns-site", (RegionConstraint("lm-ns", RADIUS_KM),))
    return Setup(tmp_path / "chip", chip_key, landmark, region, tmp_path / "lm.key")


def _cli(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "computewatch", *args]


@pytest.fixture
def landmark(pair: Pair, setup: Setup, tmp_path: Path) -> Iterator[str]:
    ready = tmp_path / "ready"
    cmd = _cli(pair.landmark_ns, "location", "landmark", "--id", "lm-ns")
    cmd += ["--key", str(setup.landmark_key_file), "--bind", f"{pair.landmark_ip}:{_PORT}"]
    cmd += ["--ready-file", str(ready), "--serve-for", "900"]
    log = tmp_path / "landmark.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        for _ in range(_SLOW_S * 10):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), log.read_text()
        yield f"{pair.landmark_ip}:{_PORT}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answer_and_check(pair: Pair, setup: Setup, address: str, tmp_path: Path) -> object:
    out = tmp_path / "measurements.json"
    got = _run(
        *_cli(pair.chip_ns, "location", "answer", "--chip", str(setup.folder)),
        "--landmark",
        f"lm-ns={address}",
        "--probes",
        "5",
        "--out",
        str(out),
        check=False,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    envs = [Envelope.from_json(e) for e in json.loads(out.read_text())["measurements"]]
    return check_location(
        "CW-NS-1",
        setup.chip_key,
        setup.region,
        [setup.landmark],
        envs,
        now_us=time.time_ns() // 1000,
    )


def _netem(pair: Pair, spec: str) -> None:
    got = _run(
        "ip", "netns", "exec", pair.chip_ns, "tc", "qdisc", "add", "dev", pair.chip_dev,
        "root", "netem", *spec.split(), check=False,
    )  # fmt: skip
    if got.returncode != 0:
        pytest.skip(
            f"tc netem is unavailable here: 'tc qdisc add ... netem {spec}' failed with "
            f"{got.stderr.strip()!r} (the kernel has no sch_netem; modprobe sch_netem "
            "needs a host kernel with CONFIG_NET_SCH_NETEM)"
        )


def test_a_chip_next_to_the_landmark_is_inside(
    pair: Pair, setup: Setup, landmark: str, tmp_path: Path
) -> None:
    check = _answer_and_check(pair, setup, landmark, tmp_path)
    assert check.status is LocationStatus.INSIDE, check.summary  # type: ignore[attr-defined]


def test_a_relay_in_the_chips_namespace_adds_its_distance(
    pair: Pair, setup: Setup, landmark: str, tmp_path: Path
) -> None:
    """User-space delay (runs without netem): 150 ms each way with jitter, through the veth."""
    port_file = tmp_path / "relay"
    script = (
        "import random, sys, time\n"
        "from computewatch.attacks import DelayingRelay\n"
        "host, port = sys.argv[1].rsplit(':', 1)\n"
        "jitter = lambda: random.expovariate(1 / 0.003)\n"
        "r = DelayingRelay((host, int(port)), 0.15, jitter=jitter)\n"
        "open(sys.argv[2], 'w').write(str(r.address[1]))\n"
        "time.sleep(600)\n"
    )
    cmd = ["ip", "netns", "exec", pair.chip_ns, sys.executable, "-c", script]
    relay = subprocess.Popen([*cmd, landmark, str(port_file)])  # noqa: S603
    try:
        for _ in range(_SLOW_S * 10):
            if (port_file.exists() and port_file.read_text()) or relay.poll() is not None:
                break
            time.sleep(0.1)
        assert port_file.exists(), f"the relay did not start (exit status {relay.poll()})"
        check = _answer_and_check(pair, setup, f"127.0.0.1:{port_file.read_text()}", tmp_path)
    finally:
        relay.terminate()
        relay.wait(timeout=30)
    assert check.status is LocationStatus.OUTSIDE, check.summary  # type: ignore[attr-defined]
    assert check.results[0].bound_km >= 30_000  # type: ignore[attr-defined]


def test_netem_jitter_within_the_radius_stays_inside(
    pair: Pair, setup: Setup, landmark: str, tmp_path: Path
) -> None:
    _netem(pair, "delay 3ms 1ms distribution normal")
    check = _answer_and_check(pair, setup, landmark, tmp_path)
    assert check.status is LocationStatus.INSIDE, check.summary  # type: ignore[attr-defined]


def test_netem_delay_beyond_the_radius_is_flagged(
    pair: Pair, setup: Setup, landmark: str, tmp_path: Path
) -> None:
    _netem(pair, "delay 300ms 20ms")
    check = _answer_and_check(pair, setup, landmark, tmp_path)
    assert check.status is LocationStatus.OUTSIDE, check.summary  # type: ignore[attr-defined]
    assert check.results[0].bound_km >= 25_000  # type: ignore[attr-defined]
