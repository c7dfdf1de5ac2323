"""Landmarks: the Verifier's timing servers, and the chip host's client for them.

The exchange, one UDP datagram each way per step, canonical JSON:

1. chip host -> landmark: ``hello`` naming the serial, padded to at least
   512 bytes (the landmark never sends more than it received: no
   amplification for spoofed sources);
2. landmark -> chip host: ``challenge`` with a fresh 16-byte nonce; the
   landmark notes its own monotonic clock (the chip's clock is never used);
3. chip host -> landmark: ``answer``, the chip's signed answer
   (`computewatch.chip.LocationAnswerer`);
4. landmark -> chip host: ``measurement``, signed by the landmark: serial,
   nonce, the round trip in microseconds (receive time minus send time, the
   receive time read before the answer is even parsed), the landmark's wall
   time and the chip's answer verbatim.

The landmark does not need the chip's key: the checker
(`computewatch.supplychain.check_location`) verifies the answer against the
directory. A nonce is answered once, from the address it was sent to,
within ``timeout_s``; a late, repeated or unknown nonce gets an ``error``.

`LandmarkCore` is the logic with its clocks and randomness passed in (the
simulation drives it with a latency model); `LandmarkServer` serves it on
a UDP socket; `measure_at` is the client.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from computewatch._validate import positive, positive_int
from computewatch.chip import check_landmark_id, check_location_nonce
from computewatch.crypto import Envelope, canonical_json, sign_envelope
from computewatch.errors import CheckUnavailable, FormatError
from computewatch.supplychain._model import ReplayError, check_serial

if TYPE_CHECKING:
    from collections.abc import Callable

    from computewatch.crypto import Signer

__all__ = [
    "MAX_DATAGRAM",
    "MEASUREMENT_TYPE",
    "LandmarkCore",
    "LandmarkServer",
    "measure_at",
    "parse_address",
]

#: DSSE payload type of a landmark's signed measurement.
MEASUREMENT_TYPE = "application/vnd.computewatch.location-measurement+json"
MEASUREMENT_VERSION = "cw-location-measurement/v1"
#: Largest datagram either side accepts.
MAX_DATAGRAM = 8192
_HELLO_BYTES = 512
_MAX_PORT = 65535


def parse_address(value: str) -> tuple[str, int]:
    """Parse ``host:port`` (`FormatError` naming the value)."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= _MAX_PORT:
        msg = f"address: expected HOST:PORT, got {value!r:.80}"
        raise FormatError(msg)
    return host.strip("[]"), int(port)


def _decode(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_DATAGRAM:
        msg = f"{what}: datagram over {MAX_DATAGRAM} bytes"
        raise FormatError(msg)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        msg = f"{what}: not JSON ({e.__class__.__name__})"
        raise FormatError(msg) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), str):
        msg = f"{what}: expected an object with a 't' field"
        raise FormatError(msg)
    return doc


def _nonce_of(answer_json: str) -> bytes:
    """The nonce an (unverified) answer names; only a lookup key, verified later."""
    env = Envelope.from_json(answer_json)
    try:
        doc = json.loads(env.payload)
        return check_location_nonce(bytes.fromhex(str(doc["nonce"])))
    except (ValueError, KeyError, TypeError) as e:
        msg = f"answer: payload has no nonce ({e.__class__.__name__})"
        raise FormatError(msg) from e


@dataclass(frozen=True, slots=True)
class _Pending:
    serial: str
    peer: tuple[str, int]
    sent_ns: int


class LandmarkCore:
    """A landmark's protocol logic: issue nonces, time and sign the answers."""

    def __init__(
        self,
        landmark_id: str,
        signer: Signer,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        timeout_s: float = 2.0,
        max_pending: int = 4096,
    ) -> None:
        """Create the landmark ``landmark_id`` whose measurements ``signer`` signs."""
        self.landmark_id = check_landmark_id(landmark_id)
        self._signer = signer
        self._clock_ns = clock_ns
        self._wall_us = wall_us
        self._random = random_bytes
        self._timeout_ns = round(positive("timeout_s", timeout_s) * 1e9)
        self._max_pending = positive_int("max_pending", max_pending)
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: int) -> None:
        while self._pending:
            nonce, p = next(iter(self._pending.items()))
            if now - p.sent_ns <= self._timeout_ns and len(self._pending) <= self._max_pending:
                return
            del self._pending[nonce]

    def challenge(self, serial: str, peer: tuple[str, int]) -> bytes:
        """Issue a nonce for ``serial`` at ``peer``; return the challenge datagram."""
        check_serial(serial)
        nonce = check_location_nonce(self._random(16))
        doc = {"t": "challenge", "landmark": self.landmark_id, "serial": serial}
        data = canonical_json(doc | {"nonce": nonce.hex()})
        with self._lock:
            sent = self._clock_ns()
            self._pending[nonce] = _Pending(serial, peer, sent)
            self._expire(sent)
        return data

    def measure(self, answer_json: str, peer: tuple[str, int], received_ns: int) -> Envelope:
        """Time and sign the answer received at ``received_ns`` from ``peer``.

        Raises:
            ReplayError: The nonce is unknown, answered already, expired, or
                was sent to another address.
            FormatError: The answer is malformed.
        """
        nonce = _nonce_of(answer_json)
        with self._lock:
            pending = self._pending.pop(nonce, None)
        if pending is None:
            msg = f"landmark {self.landmark_id}: nonce {nonce.hex()[:12]}… unknown or answered"
            raise ReplayError(msg)
        rtt_ns = received_ns - pending.sent_ns
        if rtt_ns > self._timeout_ns or rtt_ns < 0:
            msg = f"landmark {self.landmark_id}: answer after {rtt_ns / 1e6:.1f} ms (expired)"
            raise ReplayError(msg)
        if peer != pending.peer:
            msg = (
                f"landmark {self.landmark_id}: answer from {peer}, challenge sent to {pending.peer}"
            )
            raise ReplayError(msg)
        doc = {
            "type": MEASUREMENT_VERSION,
            "landmark": self.landmark_id,
            "serial": pending.serial,
            "nonce": nonce.hex(),
            "rtt_us": rtt_ns // 1000,
            "time_us": self._wall_us(),
            "answer": answer_json,
        }
        return sign_envelope(MEASUREMENT_TYPE, canonical_json(doc), [self._signer])

    def handle(self, data: bytes, peer: tuple[str, int], received_ns: int) -> bytes | None:
        """Answer one datagram (None: send nothing).

        Only a measurement may be larger than the datagram it answers, and a
        measurement goes only to the address its challenge reached (the
        nonce proves it): a spoofed source gets nothing larger than it sent.
        """
        try:
            doc = _decode(data, "datagram")
            if doc["t"] == "hello":
                reply = self.challenge(str(doc.get("serial")), peer)
                return reply if len(reply) <= len(data) else None
            if doc["t"] == "answer":
                env = self.measure(str(doc.get("answer")), peer, received_ns)
                return canonical_json({"t": "measurement", "envelope": env.to_json().decode()})
        except (FormatError, ReplayError) as e:
            reply = canonical_json({"t": "error", "error": " ".join(e.message.split())[:300]})
            return reply if len(reply) <= len(data) else None
        return None


class LandmarkServer:
    """Serve a `LandmarkCore` on a UDP socket in a background thread."""

    def __init__(self, core: LandmarkCore, bind: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        """Bind ``bind`` (port 0: any free port) and start serving."""
        self.core = core
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind(bind)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="landmark", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound address."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(MAX_DATAGRAM + 1)
            except TimeoutError:
                continue
            except OSError:
                return
            received = self.core._clock_ns()  # noqa: SLF001 - the core's own clock, read first
            try:
                reply = self.core.handle(data, (str(peer[0]), int(peer[1])), received)
            except Exception:  # noqa: BLE001, S112 - no hostile datagram may stop the service
                continue
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply, peer)

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        """Serve until the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self.close()


def _hello(serial: str) -> bytes:
    doc = {"t": "hello", "serial": serial, "pad": ""}
    size = len(canonical_json(doc))
    return canonical_json(doc | {"pad": "0" * max(0, _HELLO_BYTES - size)})


def measure_at(
    answer: Callable[[str, bytes], Envelope],
    serial: str,
    address: tuple[str, int],
    *,
    probes: int = 3,
    timeout_s: float = 2.0,
) -> list[Envelope]:
    """Run ``probes`` exchanges with the landmark at ``address``; return its measurements.

    Args:
        answer: Signs the answer to (landmark id, nonce), e.g.
            `LocationAnswerer.answer`.
        serial: The chip's serial.
        address: The landmark's UDP address.
        probes: Measurements wanted (the checker keeps the smallest round trip).
        timeout_s: How long to wait for each reply.

    Raises:
        CheckUnavailable: The landmark gave no measurement after twice ``probes`` tries.
    """
    check_serial(serial)
    positive_int("probes", probes)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    out: list[Envelope] = []
    last = "no reply"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(positive("timeout_s", timeout_s))
        sock.connect(address)
        for _ in range(2 * probes):
            if len(out) == probes:
                break
            try:
                sock.send(_hello(serial))
                challenge = _decode(sock.recv(MAX_DATAGRAM + 1), "challenge")
                if challenge["t"] != "challenge":
                    last = str(challenge.get("error", challenge["t"]))[:200]
                    continue
                nonce = check_location_nonce(bytes.fromhex(str(challenge.get("nonce"))))
                env = answer(check_landmark_id(challenge.get("landmark")), nonce)
                sock.send(canonical_json({"t": "answer", "answer": env.to_json().decode()}))
                reply = _decode(sock.recv(MAX_DATAGRAM + 1), "measurement")
            except (TimeoutError, ConnectionRefusedError) as e:
                last = e.__class__.__name__
                continue
            except (ValueError, FormatError) as e:
                last = str(e)[:200]
                continue
            if reply["t"] != "measurement":
                last = str(reply.get("error", reply["t"]))[:200]
                continue
            out.append(Envelope.from_json(str(reply.get("envelope"))))
    if not out:
        msg = f"landmark at {address[0]}:{address[1]}: no measurement ({last})"
        raise CheckUnavailable(msg)
    return out
