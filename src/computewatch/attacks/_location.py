"""Attacks on location checks (``docs/location.md``): a diverted chip tries to pass.

Each attack runs the real protocol on 127.0.0.1: real `LandmarkServer` UDP
services with their own keys, a real chip secure element answering through
`LocationAnswerer`, the Prover's hostile host code in between, and the real
`check_location` against the directory's key and the licensed region. The
distance between the diverted chip and the landmark is a real delay: the
`DelayingRelay` holds every datagram for the one-way time light in fibre
needs to cover it (sleeping never returns early, so the round trip the
landmark times is at least that).

* ``location-relay``: a host beside the landmark relays the challenge to the
  chip 3000 km away and its answer back: the landmark times the whole path.
* ``location-delayed-answer``: a host answers late: the bound only grows.
* ``location-replayed-answer``: the Prover replays an answer and the
  measurements it got while the chip was still in its region.
* ``location-other-chip-key``: a decoy chip inside the region answers for the
  diverted chip's serial, with its own key.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Self

from computewatch.attacks._harness import Attempt, Detection
from computewatch.chip import (
    LocationAnswerer,
    LogState,
    genesis_hash,
    provision_secure_element,
)
from computewatch.crypto import Envelope, SigningKey
from computewatch.errors import ComputeWatchError
from computewatch.supplychain import (
    Landmark,
    LandmarkCore,
    LandmarkServer,
    LicensedRegion,
    LocationPolicy,
    RegionConstraint,
    check_location,
    measure_at,
)
from computewatch.supplychain._location_sim import FIBRE_ONE_WAY_KM_PER_MS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun, Scale
    from computewatch.verification import VerificationPolicy

__all__ = [
    "DelayingRelay",
    "LocationDelayedAnswer",
    "LocationOtherChipKey",
    "LocationRelay",
    "LocationReplayedAnswer",
    "location_world",
]

#: The licensed radius around the test landmark (10 ms of round trip).
RADIUS_KM = 1000.0
#: How far the diverted chip is from the landmark.
DIVERTED_KM = 3000.0
_MAX = 8192


class DelayingRelay:
    """A UDP relay that holds every datagram ``one_way_s`` (plus jitter) each way.

    Clients send to `address`; the relay forwards to ``upstream`` from one
    socket and sends the replies back to the last client. Used both as the
    attacker's relay host and to put distance on a loopback link.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        one_way_s: float,
        *,
        jitter: Callable[[], float] = lambda: 0.0,
    ) -> None:
        """Listen on 127.0.0.1 (any port) and start relaying."""
        self._up = upstream
        self._delay = one_way_s
        self._jitter = jitter
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.connect(upstream)
        self._client: tuple[str, int] | None = None
        self._queue: list[tuple[float, int, bool, bytes]] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients send."""
        host, port = self._front.getsockname()[:2]
        return str(host), int(port)

    def _hold(self, data: bytes, *, upstream: bool) -> None:
        due = time.monotonic() + self._delay + max(0.0, self._jitter())
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, upstream, data))

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 0.05 if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
            ready, _, _ = select.select([self._front, self._back], [], [], min(wait, 0.05))
            for sock in ready:
                data, peer = sock.recvfrom(_MAX + 1)
                if sock is self._front:
                    self._client = (str(peer[0]), int(peer[1]))
                self._hold(data, upstream=sock is self._front)
            while self._queue and self._queue[0][0] <= time.monotonic():
                _, _, upstream, data = heapq.heappop(self._queue)
                with contextlib.suppress(OSError):
                    if upstream:
                        self._back.send(data)
                    elif self._client is not None:
                        self._front.sendto(data, self._client)

    def close(self) -> None:
        """Stop relaying."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._front.close()
        self._back.close()

    def __enter__(self) -> Self:
        """Relay until the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop relaying."""
        self.close()


def one_way_s(km: float) -> float:
    """Seconds light in fibre needs to cover ``km`` once."""
    return km / FIBRE_ONE_WAY_KM_PER_MS / 1000.0


@contextlib.contextmanager
def location_world(workdir: Path, trial: int) -> Iterator[dict[str, Any]]:
    """A landmark on 127.0.0.1, its region, the diverted chip and a decoy chip inside."""
    key = SigningKey.from_seed(bytes([trial % 251 + 1]) * 32)
    core = LandmarkCore("lm-site", key, timeout_s=1.0)
    with LandmarkServer(core) as server:
        landmark = Landmark("lm-site", 50.11, 8.68, key.verifying_key)
        chips = {}
        for name in ("diverted", "decoy"):
            serial = f"CW-LOC-{name}-{trial}"
            se = provision_secure_element(f"file:{workdir / name / 'se'}", serial)
            chips[name] = LocationAnswerer(se, _empty_log(serial))
        try:
            yield {
                "server": server,
                "landmark": landmark,
                "region": LicensedRegion("site", (RegionConstraint("lm-site", RADIUS_KM),)),
                "chip": chips["diverted"],
                "decoy": chips["decoy"],
            }
        finally:
            for chip in chips.values():
                chip.close()


def _empty_log(serial: str) -> LogState:
    return LogState(0, genesis_hash(serial))


def _judge(
    world: dict[str, Any],
    measurements: Sequence[Envelope],
    *,
    seen: set[str] | None = None,
    gathered: str = "",
) -> Detection:
    chip = world["chip"]
    if not measurements:
        return Detection(
            detected=True, checks=("unproven",), detail=f"no measurement: {gathered}"[:300]
        )
    check = check_location(
        str(chip.serial),
        chip.public_key,
        world["region"],
        [world["landmark"]],
        measurements,
        now_us=time.time_ns() // 1000,
        policy=LocationPolicy(),
        seen_nonces=seen,
    )
    return Detection(not check.inside, (check.status.value,), detail=check.summary[:300])


def _gather(
    answer: Callable[[str, bytes], Envelope], serial: str, address: tuple[str, int]
) -> tuple[list[Envelope], str]:
    try:
        return measure_at(answer, serial, address, probes=3, timeout_s=1.5), ""
    except ComputeWatchError as e:
        return [], e.message


class _LocationAttack:
    name = ""
    threat = ""
    expected: tuple[str, ...] = ()
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale | None = None
    ) -> Attempt:
        """Nothing to build ahead: the attack runs live in `detect`."""
        del bases, scale
        return Attempt(data={"workdir": workdir, "trial": trial})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Run the attack against live landmarks and check the chip's location."""
        del policy, rng
        with location_world(attempt.data["workdir"], attempt.data["trial"]) as world:
            return self.attack(world)

    def attack(self, world: dict[str, Any]) -> Detection:  # pragma: no cover - overridden
        """The attack proper."""
        raise NotImplementedError


class LocationRelay(_LocationAttack):
    """A host beside the landmark relays for the chip 3000 km away."""

    name = "location-relay"
    threat = "location: relay through a host near a landmark"
    expected = ("outside",)

    def attack(self, world: dict[str, Any]) -> Detection:
        """Relay over a link as long as the chip is far."""
        chip = world["chip"]
        with DelayingRelay(world["server"].address, one_way_s(DIVERTED_KM)) as relay:
            got, why = _gather(chip.answer, str(chip.serial), relay.address)
        return _judge(world, got, gathered=why)


class LocationDelayedAnswer(_LocationAttack):
    """The host holds the answer (to hide where it is, or while it forwards it)."""

    name = "location-delayed-answer"
    threat = "location: a delayed answer"
    expected = ("outside", "unproven")

    def attack(self, world: dict[str, Any]) -> Detection:
        """Answer 40 ms late."""
        chip = world["chip"]

        def late(landmark: str, nonce: bytes) -> Envelope:
            time.sleep(0.04)
            env: Envelope = chip.answer(landmark, nonce)
            return env

        got, why = _gather(late, str(chip.serial), world["server"].address)
        return _judge(world, got, gathered=why)


class LocationReplayedAnswer(_LocationAttack):
    """Answers and measurements from when the chip was inside, replayed after diversion."""

    name = "location-replayed-answer"
    threat = "location: a replayed old answer"
    expected = ("rejected", "unproven")

    def attack(self, world: dict[str, Any]) -> Detection:
        """Record while inside; then replay the measurements, and the answer to new nonces."""
        chip, address = world["chip"], world["server"].address
        old, _ = _gather(chip.answer, str(chip.serial), address)
        seen: set[str] = set()
        first = _judge(world, old, seen=seen)  # the honest check when the chip was inside
        replayed = _judge(world, old, seen=seen)
        recorded = [Envelope.from_json(json.loads(old[0].payload)["answer"])] if old else []

        def replay(landmark: str, nonce: bytes) -> Envelope:
            del nonce
            return recorded[0] if recorded else chip.answer(landmark, bytes(16))

        got, why = _gather(replay, str(chip.serial), address)
        fresh = _judge(world, got, gathered=why)
        both = replayed.detected and fresh.detected and not first.detected
        return Detection(
            both,
            tuple(sorted({*replayed.checks, *fresh.checks})),
            detail=f"measurements replayed: {replayed.detail}; answer replayed: {fresh.detail}"[
                :300
            ],
        )


class LocationOtherChipKey(_LocationAttack):
    """A decoy chip inside the region answers for the diverted chip."""

    name = "location-other-chip-key"
    threat = "location: a chip answering with another chip's key"
    expected = ("rejected",)

    def attack(self, world: dict[str, Any]) -> Detection:
        """The decoy answers challenges issued for the diverted chip's serial."""
        decoy, chip = world["decoy"], world["chip"]
        got, why = _gather(decoy.answer, str(chip.serial), world["server"].address)
        return _judge(world, got, gathered=why)
