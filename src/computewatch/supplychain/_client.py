"""The registry service's client: `RegistryClient` (the chip's `ReceiptClient` is beside it).

Both trust nothing the server says that they can check: every receipt is
verified offline (`verify_receipt`) against the log's note key before it is
returned, and `RegistryClient.checkpoint` checks each new checkpoint for
consistency with the last one it saw (a log that forks or rewrites history
is caught). Refusals come back as the server's `ComputeWatchError` class
with its message; an unreachable server is `CheckUnavailable`.

The chip's ``receipts=`` callback, `ReceiptClient`, is in `_receipt_client`.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

import httpx

from computewatch.crypto import (
    Checkpoint,
    Envelope,
    NoteVerifier,
    Policy,
    Receipt,
    SignedCheckpoint,
    verify_consistency,
    verify_receipt,
)
from computewatch.errors import (
    CheckUnavailable,
    FormatError,
    IntegrityError,
)
from computewatch.supplychain._highwater import HighWater
from computewatch.supplychain._location_record import parse_check, parse_region
from computewatch.supplychain._model import (
    Actor,
    ChipEvent,
    ChipState,
    ChipStatus,
    EventKind,
    Role,
    UnknownEntity,
)
from computewatch.supplychain._receipt_client import (
    Trust,
    raise_for_error,
    trusted_policy,
)
from computewatch.supplychain._registry import Acknowledgement
from computewatch.supplychain._reports import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyReport,
    ReportPolicy,
)

if TYPE_CHECKING:
    from types import TracebackType

    from computewatch.crypto import TrustedCheckpoints
    from computewatch.supplychain._location import LocationCheck
    from computewatch.supplychain._location_geo import LicensedRegion

__all__ = ["RegistryClient"]


class RegistryClient:
    """A client of the registry's directory, log and write endpoints."""

    def __init__(
        self,
        base_url: str,
        log_keys: Trust,
        origin: str | None = None,
        *,
        timeout: float = 30.0,
        state: TrustedCheckpoints | None = None,
    ) -> None:
        """Talk to the registry at ``base_url``, trusting ``log_keys`` (origin: the first's).

        ``log_keys`` may be a `Policy`: then checkpoints and receipts need its
        witness quorum too. With ``state``, every checkpoint accepted must
        extend the newest accepted before (persisted; see `TrustedCheckpoints`).
        """
        self._trusted = trusted_policy(log_keys)
        self._state = state
        self.origin = origin or self._trusted.logs[0].key.name
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        #: The largest verified checkpoint seen (receipts and checkpoints).
        self.last_checkpoint: Checkpoint | None = None
        #: The signed note of the last checkpoint fetched by `checkpoint`.
        self.last_signed: SignedCheckpoint | None = None

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

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self._http.get(
                path, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as e:
            msg = f"registry {self._http.base_url}: unreachable ({type(e).__name__}: {e})"
            raise CheckUnavailable(msg) from e
        raise_for_error(response, f"registry GET {path}")
        return response

    # --- writes ------------------------------------------------------------------

    def submit(self, envelope: Envelope | bytes) -> Acknowledgement:
        """Submit a signed request; return its verified acknowledgement once durable.

        Raises:
            ComputeWatchError: The server's refusal, or `IntegrityError` if the
                receipt does not verify.
        """
        body = envelope.to_json() if isinstance(envelope, Envelope) else bytes(envelope)
        try:
            response = self._http.post(
                "/v1/requests", content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as e:
            msg = f"registry {self._http.base_url}: unreachable ({type(e).__name__}: {e})"
            raise CheckUnavailable(msg) from e
        raise_for_error(response, "registry POST /v1/requests")
        doc = response.json()
        receipt = Receipt.from_text(doc["receipt"])
        self._seen(verify_receipt(receipt, self._trusted, self.origin, entry=body))
        return Acknowledgement(int(doc["index"]), receipt, bool(doc.get("duplicate", False)))

    # --- the log -----------------------------------------------------------------

    def _seen(self, checkpoint: Checkpoint) -> None:
        old = self.last_checkpoint
        if old is None or checkpoint.size > old.size:
            self.last_checkpoint = checkpoint

    def checkpoint(self) -> Checkpoint:
        """Fetch, verify and return the latest checkpoint, consistent with the last one seen.

        Raises:
            IntegrityError: Bad signature, or not consistent with an earlier
                checkpoint (a forked or rewritten log); `RollbackError` if
                older than the newest in ``state``.
            QuorumNotMet: Under a policy, too few witnesses cosigned it.
        """
        text = self._get("/v1/log/checkpoint").content
        signed = SignedCheckpoint.parse(text)
        new = self._trusted.verify(signed, self.origin).checkpoint
        if self._state is not None:
            self._state.accept(signed, self.origin, self.consistency_proof)
        if self.last_checkpoint is not None:
            self.verify_consistency(self.last_checkpoint, new)
        self._seen(new)
        self.last_signed = signed
        return new

    def verify_consistency(self, old: Checkpoint, new: Checkpoint) -> None:
        """Fetch and check the proof that ``old`` is a prefix of ``new`` (both verified).

        Raises:
            IntegrityError: The proof fails, or ``new`` is smaller than ``old``.
        """
        if new.size < old.size:
            msg = f"registry log: checkpoint size went back from {old.size} to {new.size}"
            raise IntegrityError(msg)
        if old.size in {0, new.size}:
            if old.size == new.size and old.root_hash != new.root_hash:
                msg = f"registry log: two different roots for size {old.size} (a split view)"
                raise IntegrityError(msg)
            return
        proof = self.consistency_proof(old.size, new.size)
        verify_consistency(
            old_size=old.size,
            new_size=new.size,
            proof=proof,
            old_root=old.root_hash,
            new_root=new.root_hash,
        )

    def consistency_proof(self, old: int, new: int) -> tuple[bytes, ...]:
        """The consistency proof between two tree sizes."""
        doc = self._get("/v1/log/proof/consistency", old=old, size=new).json()
        return tuple(base64.b64decode(h) for h in doc["proof"])

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, ...]:
        """The inclusion proof of entry ``index`` in the tree of ``size``."""
        doc = self._get("/v1/log/proof/inclusion", index=index, size=size).json()
        return tuple(base64.b64decode(h) for h in doc["proof"])

    def entry(self, index: int) -> bytes:
        """Log entry ``index`` (unverified bytes; check them with a receipt)."""
        return base64.b64decode(self._get(f"/v1/log/entries/{index}").json()["entry"])

    def entries(self, start: int = 0, end: int | None = None) -> list[bytes]:
        """Log entries ``start`` to ``end - 1`` (default: to the last checkpoint's size).

        The bytes are unverified; check them against a checkpoint (rebuild
        the tree, or with receipts).
        """
        stop = end if end is not None else (self.last_checkpoint or self.checkpoint()).size
        out: list[bytes] = []
        while start + len(out) < stop:
            first = start + len(out)
            page = self._get("/v1/log/entries", start=first, end=min(stop, first + 1000)).json()
            out.extend(base64.b64decode(e["entry"]) for e in page)
        return out

    def receipt(self, index: int) -> Receipt:
        """A receipt for entry ``index``, verified against the trusted key."""
        receipt = Receipt.from_text(self._get(f"/v1/log/receipt/{index}").content)
        self._seen(verify_receipt(receipt, self._trusted, self.origin))
        return receipt

    # --- the directory -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The registry's trust roots and state (as it says; check the log key out of band)."""
        info: dict[str, Any] = self._get("/v1/registry").json()
        return info

    def chip(self, serial: str) -> ChipState:
        """A chip's directory record."""
        d = self._get(f"/v1/chips/{serial}").json()
        return ChipState(
            d["serial"],
            bytes.fromhex(d["key"]),
            d["model"],
            tuple(d["capabilities"]),
            d["fab"],
            ChipStatus(d["status"]),
            d["holder"],
            d["pending_to"],
            d["owner"],
            d["ever_registered"],
            d["damaged"],
            d["fabricated_us"],
            d["status_since_us"],
            d["last_event_us"],
            d["last_index"],
        )

    def high_water(self, serial: str) -> HighWater | None:
        """The most the registry has seen of a chip, proved by a verified receipt.

        None if the registry holds no log entry of the chip. The receipt is
        checked under the trusted key (or policy) like every other, and the
        entry it proves must be the chip's own.

        Raises:
            IntegrityError: The receipt does not verify, or proves another chip's entry.
        """
        try:
            response = self._get(f"/v1/chips/{serial}/high-water")
        except UnknownEntity:
            return None
        receipt = Receipt.from_text(response.content)
        self._seen(verify_receipt(receipt, self._trusted, self.origin))
        if receipt.entry is None:
            msg = f"registry high-water mark for chip S/N {serial}: the receipt carries no entry"
            raise FormatError(msg)
        mark = HighWater.from_entry(receipt.entry, log_index=receipt.index, receipt=receipt)
        if mark.serial != serial:
            msg = f"registry high-water mark for chip S/N {serial} proves an entry of {mark.serial}"
            raise IntegrityError(msg)
        return mark

    def history(self, serial: str) -> list[ChipEvent]:
        """A chip's custody history, oldest first."""
        return [
            ChipEvent(
                d["serial"],
                d["log_index"],
                EventKind(d["kind"]),
                d["actor"],
                d["counterparty"],
                d["time_us"],
                d["flagged"],
                d["details"],
            )
            for d in self._get(f"/v1/chips/{serial}/history").json()
        ]

    def region(self, serial: str) -> LicensedRegion:
        """The chip's licensed region (`UnknownEntity` if it has none)."""
        return parse_region(self._get(f"/v1/chips/{serial}/region").json().get("region"))

    def locations(self, serial: str, *, limit: int = 100) -> list[LocationCheck]:
        """The chip's latest logged location checks, oldest first."""
        docs = self._get(f"/v1/chips/{serial}/locations", limit=limit).json()
        out = []
        for d in docs if isinstance(docs, list) else [None]:
            if not isinstance(d, dict):
                msg = f"registry GET /v1/chips/{serial}/locations: expected a list of checks"
                raise FormatError(msg)
            index = d.pop("log_index", None)
            out.append(replace(parse_check(d, "registry location check"), log_index=index))
        return out

    def actor(self, actor_id: str) -> Actor:
        """A registered actor."""
        d = self._get(f"/v1/actors/{actor_id}").json()
        return Actor(
            d["actor_id"],
            Role(d["role"]),
            bytes.fromhex(d["key"]),
            d["name"],
            d["registered_us"],
            d["last_counter"],
            d["log_index"],
        )

    def discrepancies(self, now_us: int | None = None) -> DiscrepancyReport:
        """The server's discrepancy report (at ``now_us``, default the server's clock)."""
        d = self._get("/v1/reports/discrepancies", now_us=now_us).json()
        items = tuple(
            Discrepancy(
                DiscrepancyKind(i["kind"]),
                tuple(i["serials"]),
                i["responsible"],
                i["since_us"],
                i["message"],
                tuple(i["log_indices"]),
            )
            for i in d["items"]
        )
        policy = ReportPolicy(
            **{k: v for k, v in d["policy"].items() if k != "mass_loss_count"},
            mass_loss_count=int(d["policy"]["mass_loss_count"]),
        )
        truncated = tuple(DiscrepancyKind(k) for k in d["truncated"])
        return DiscrepancyReport(d["now_us"], policy, items, truncated)

    # --- read-only queries of other routers (e.g. AuditQueries) -------------------

    def get_json(self, path: str, **params: Any) -> dict[str, Any]:
        """GET ``path`` (a JSON object answer; unverified: the caller checks proofs)."""
        doc = self._get(path, **params).json()
        if not isinstance(doc, dict):
            msg = f"registry GET {path}: expected a JSON object"
            raise FormatError(msg)
        return doc

    @property
    def trusted(self) -> list[NoteVerifier]:
        """The log keys this client trusts (its policy's logs)."""
        return [log.key for log in self._trusted.logs]

    @property
    def policy(self) -> Policy:
        """The policy checkpoints and receipts are accepted under (``quorum none`` for keys)."""
        return self._trusted

    @property
    def state(self) -> TrustedCheckpoints | None:
        """The memory of accepted checkpoints every new one must extend, if any."""
        return self._state
