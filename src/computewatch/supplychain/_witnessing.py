"""`WitnessPool`: the log's side of tlog-witness, pushing each new checkpoint to witnesses.

For every checkpoint the registry signs (one per group-committed batch, so
the cost is paid per batch, not per write), the pool posts an
``add-checkpoint`` request to every witness of the policy that has a URL, in
parallel over keep-alive connections, with a consistency proof from the size
it last saw that witness at. A 409 tells the witness's real size: the pool
retries once from there. The answer's cosignature lines are verified against
the witness's key from the policy (anything else is dropped) and appended to
the checkpoint. A witness that is down, slow or refusing costs at most
``timeout_s`` and its cosignature is simply missing: clients then decide under
their own policy whether the checkpoint has a quorum.

Example:
    >>> pool = WitnessPool(Policy.parse(text))                      # doctest: +SKIP
    >>> cosigned = pool.cosign(signed, log.consistency_proof)       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from computewatch.crypto import (
    NoteSignature,
    SignedCheckpoint,
    add_checkpoint_body,
)
from computewatch.crypto._checkpoint import parse_decimal
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from computewatch.crypto import Checkpoint, Policy, PolicyWitness

__all__ = ["WitnessPool", "WitnessStats"]

_log = logging.getLogger("computewatch.registry.witnesses")
_MAX_RESPONSE = 1 << 16
_CONFLICT = 409


@dataclass
class WitnessStats:
    """Counters of one witness, for health and benchmarks."""

    cosigned: int = 0
    conflicts: int = 0
    failures: int = 0
    last_error: str = ""
    known_size: int = 0
    seconds: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


def _parse_lines(
    data: bytes, witness: PolicyWitness, checkpoint: Checkpoint
) -> list[NoteSignature]:
    if len(data) > _MAX_RESPONSE:
        return []
    good = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        try:
            line = NoteSignature.from_line(raw, 1)
        except FormatError:
            continue
        if witness.key.verify(checkpoint, line) is not None:
            good.append(line)
    return good


def _once(
    consistency: Callable[[int, int], Sequence[bytes]],
) -> Callable[[int, int], Sequence[bytes]]:
    """``consistency``, computing each ``(old, new)`` proof once (thread-safe)."""
    lock = threading.Lock()
    proofs: dict[tuple[int, int], tuple[bytes, ...]] = {}

    def proof(old: int, new: int) -> tuple[bytes, ...]:
        with lock:  # the others wait for the one computation of the same proof
            if (old, new) not in proofs:
                proofs[old, new] = tuple(consistency(old, new))
            return proofs[old, new]

    return proof


class WitnessPool:
    """Pushes checkpoints to the policy's witnesses that have URLs, in parallel."""

    def __init__(self, policy: Policy, *, timeout_s: float = 5.0) -> None:
        """Witness with every witness of ``policy`` that has a URL.

        Raises:
            FormatError: The policy lists no witness with a URL.
        """
        self.policy = policy
        self.witnesses = [w for w in policy.witnesses if w.url]
        if not self.witnesses:
            msg = "registry witnesses: the policy lists no witness with a URL"
            raise FormatError(msg)
        self.stats = {w.name: WitnessStats() for w in self.witnesses}
        self._http = {
            w.name: httpx.Client(base_url=str(w.url).rstrip("/"), timeout=timeout_s)
            for w in self.witnesses
        }
        self._pool = ThreadPoolExecutor(len(self.witnesses), thread_name_prefix="witness")

    def close(self) -> None:
        """Close the connections and the threads."""
        self._pool.shutdown(wait=True)
        for client in self._http.values():
            client.close()

    def cosign(
        self,
        signed: SignedCheckpoint,
        consistency: Callable[[int, int], Sequence[bytes]],
    ) -> SignedCheckpoint:
        """``signed`` with the cosignatures of every witness that gave a valid one.

        Witnesses at the same size get the same consistency proof: it is
        computed once per cycle (``consistency`` holds the log's lock, so
        computing it per witness serialised the pushes behind the writer).
        """
        proof = _once(consistency)
        futures = [self._pool.submit(self._one, w, signed, proof) for w in self.witnesses]
        lines = [line for f in futures for line in f.result()]
        return signed.with_signatures(lines)

    def _one(
        self,
        witness: PolicyWitness,
        signed: SignedCheckpoint,
        consistency: Callable[[int, int], Sequence[bytes]],
    ) -> list[NoteSignature]:
        stats = self.stats[witness.name]
        cp = signed.checkpoint
        note = signed.to_bytes()
        try:
            for _attempt in range(2):
                old = stats.known_size if stats.known_size <= cp.size else 0
                proof = consistency(old, cp.size) if 0 < old < cp.size else ()
                response = self._http[witness.name].post(
                    "/add-checkpoint", content=add_checkpoint_body(old, proof, note)
                )
                if response.status_code == _CONFLICT:
                    stats.conflicts += 1
                    stats.known_size = parse_decimal(
                        response.text.strip()[:30], f"witness {witness.name} 409 body"
                    )
                    if stats.known_size > cp.size:
                        stats.last_error = f"witness is ahead of the log ({stats.known_size})"
                        stats.failures += 1
                        return []
                    continue
                if response.status_code != 200:  # noqa: PLR2004
                    stats.failures += 1
                    stats.last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                    _log.warning(
                        "witness %s refused size %d: %s", witness.name, cp.size, stats.last_error
                    )
                    return []
                lines = _parse_lines(response.content, witness, cp)
                stats.seconds.append(response.elapsed.total_seconds())
                if lines:
                    stats.cosigned += 1
                    stats.known_size = cp.size
                return lines
        except (httpx.HTTPError, FormatError) as e:
            stats.failures += 1
            stats.last_error = f"{type(e).__name__}: {e}"
            _log.warning("witness %s unavailable: %s", witness.name, stats.last_error)
        return []
