"""The chip's `ReceiptClient`, and how the registry's clients read its answers.

`ReceiptClient` is the chip's ``receipts=`` callback::

    >>> client = ReceiptClient("http://127.0.0.1:8000", [log_vkey], origin)  # doctest: +SKIP
    >>> chip = Chip.open("chips/CW-0001", receipts=client)                    # doctest: +SKIP

It posts each signed snapshot entry, retries through connection failures
and 503s until ``timeout`` (entries are idempotent on the server), and
returns the verified `Receipt` (`verify_receipt`, against the log's note key
or a tlog-policy known in advance); anything else raises, and the chip
stalls. `raise_for_error` turns a refusal into the server's
`ComputeWatchError` class with its message (`RegistryClient` uses it too).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Self

import httpx

from computewatch.crypto import (
    Checkpoint,
    Envelope,
    NoteVerifier,
    Policy,
    QuorumNotMet,
    Receipt,
    verify_receipt,
)
from computewatch.errors import (
    CheckUnavailable,
    ComputeWatchError,
    FormatError,
    IntegrityError,
    ParameterError,
    VerificationFailed,
)
from computewatch.supplychain._model import (
    CustodyViolation,
    Overloaded,
    ReplayError,
    Rule,
    UnknownEntity,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from computewatch.crypto import TrustedCheckpoints

__all__ = ["ReceiptClient", "Trust", "proof_fetcher", "raise_for_error", "trusted_policy"]

_ERROR_TYPES: dict[str, type[ComputeWatchError]] = {
    c.__name__: c
    for c in (
        FormatError,
        ParameterError,
        IntegrityError,
        VerificationFailed,
        CheckUnavailable,
        Overloaded,
        ReplayError,
        QuorumNotMet,
    )
}
_MAX_BACKOFF_S = 1.0


def raise_for_error(response: httpx.Response, where: str) -> None:
    """Raise the computewatch error an error response carries (nothing for 2xx).

    Raises:
        ComputeWatchError: The server's error class and message; `CheckUnavailable`
            for a 5xx or an unreadable error body.
    """
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        kind, message, rule = str(error["type"]), str(error["message"]), error.get("rule")
    except (ValueError, KeyError, TypeError):
        msg = f"{where}: HTTP {response.status_code} with no computewatch error body"
        raise (CheckUnavailable if response.status_code >= 500 else FormatError)(msg) from None  # noqa: PLR2004
    if kind == "UnknownEntity":
        raise UnknownEntity(message.removeprefix(f"rule {Rule.KNOWN.value}: "))
    if kind == "CustodyViolation" and rule in {r.value for r in Rule}:
        raise CustodyViolation(Rule(rule), message.removeprefix(f"rule {rule}: "))
    cls = _ERROR_TYPES.get(kind)
    if cls is None:
        cls = CheckUnavailable if response.status_code >= 500 else VerificationFailed  # noqa: PLR2004
    raise cls(message)


#: What a client trusts: the log's note key(s), or a tlog-policy (log keys and witness quorum).
Trust = NoteVerifier | Iterable[NoteVerifier] | Policy


def trusted_policy(trust: Trust) -> Policy:
    """The policy a client checks under: `trust` itself, or its log keys with no witnesses."""
    if isinstance(trust, Policy):
        if not trust.logs:
            msg = "registry client: the policy lists no log"
            raise ParameterError(msg)
        return trust
    keys = [trust] if isinstance(trust, NoteVerifier) else list(trust)
    if not keys:
        msg = "registry client: expected at least one trusted log key, got none"
        raise ParameterError(msg)
    return Policy.for_logs(keys)


def proof_fetcher(http: httpx.Client) -> Callable[[int, int], tuple[bytes, ...]]:
    """A consistency-proof fetcher over `http` (for `TrustedCheckpoints.accept`)."""

    def fetch(old: int, new: int) -> tuple[bytes, ...]:
        try:
            response = http.get("/v1/log/proof/consistency", params={"old": old, "size": new})
        except httpx.HTTPError as e:
            msg = f"registry {http.base_url}: unreachable ({type(e).__name__}: {e})"
            raise CheckUnavailable(msg) from e
        raise_for_error(response, "registry GET /v1/log/proof/consistency")
        return tuple(base64.b64decode(h) for h in response.json()["proof"])

    return fetch


class ReceiptClient:
    """Posts a chip's signed log entries and returns verified receipts (the chip's callback)."""

    def __init__(
        self,
        base_url: str,
        trusted: Trust,
        origin: str,
        *,
        timeout: float = 10.0,
        state: TrustedCheckpoints | None = None,
    ) -> None:
        """Talk to the registry at ``base_url``.

        Args:
            base_url: e.g. ``http://127.0.0.1:8000``.
            trusted: The log's note key(s), or a `Policy` (log keys and the
                witness quorum a receipt's checkpoint must carry), known in
                advance (never fetched from the server).
            origin: The log's origin.
            timeout: Seconds to keep trying (connection failures, 503) before giving up.
            state: If given, every receipt's checkpoint must also extend the
                newest one accepted before (no rollback, no fork).
        """
        self._trusted = trusted_policy(trusted)
        self._state = state
        self._origin = origin
        self._timeout = timeout
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self.last_checkpoint: Checkpoint | None = None

    def __call__(self, envelope: Envelope) -> Receipt:
        """Log ``envelope`` and return its verified receipt.

        Raises:
            CheckUnavailable: No durable acknowledgement within the timeout.
            IntegrityError: The receipt does not verify (forged, wrong log, wrong entry).
            ComputeWatchError: The server refused the entry (its class and message).
        """
        body = envelope.to_json()
        deadline = time.monotonic() + self._timeout
        delay, last = 0.02, "no answer"
        while True:
            try:
                response = self._http.post(
                    "/v1/receipts", content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if response.status_code != 503:  # noqa: PLR2004
                    raise_for_error(response, "receipt server")
                    break
                last = "HTTP 503 (not stored yet)"
            if time.monotonic() + delay > deadline:
                msg = (
                    f"receipt server {self._http.base_url}: no receipt within "
                    f"{self._timeout:g} s ({last})"
                )
                raise CheckUnavailable(msg)
            time.sleep(delay)
            delay = min(2 * delay, _MAX_BACKOFF_S)
        receipt = Receipt.from_text(response.content)
        self.last_checkpoint = verify_receipt(receipt, self._trusted, self._origin, entry=body)
        if self._state is not None:
            self._state.accept(receipt.checkpoint, self._origin, proof_fetcher(self._http))
        return receipt

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()
