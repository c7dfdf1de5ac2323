r"""Transparency-log trust policies (c2sp.org/tlog-policy) and their evaluation.

A policy names the logs a party accepts, the witnesses it knows and the
quorum of witnesses that must have cosigned a checkpoint before it is
trusted::

    log example.com/log+1a2b3c4d+AQ...           # a log's note vkey (its name is the origin)
    witness w1 w1.example+5e6f7a8b+BA... https://w1.example/
    witness w2 w2.example+...+BA...
    witness w3 w3.example+...+Bg...              # an ML-DSA-44 witness
    group g 2 w1 w2 w3                           # or: all, any
    quorum g                                     # or: quorum none

Parsing is strict (`FormatError` naming the line): only the four keywords,
names defined before they are used, no duplicate keys (the same public key
under any name), no name listed as a member twice anywhere (so every witness
counts in one way only), ``1 <= k <= n``, exactly one quorum line, only tab,
newline and printable octets. A file is at most `MAX_POLICY_BYTES` and
`MAX_POLICY_ITEMS` of each kind.

`Policy.verify` accepts a signed checkpoint only if one of the policy's logs
for its origin signed it and its valid cosignatures satisfy the quorum
(`QuorumNotMet` otherwise; a known witness's bad cosignature is tampering,
`IntegrityError`).

Example:
    >>> from computewatch.crypto import Checkpoint, Cosigner, MerkleLog, NoteSigner, Policy
    >>> from computewatch.crypto import SignedCheckpoint
    >>> log = NoteSigner.generate("example.com/log")
    >>> w = [Cosigner.generate(f"w{i}.example") for i in range(3)]
    >>> text = f"log {log.verifier.vkey}\n" + "".join(
    ...     f"witness W{i} {c.key.vkey}\n" for i, c in enumerate(w)
    ... ) + "group g 2 W0 W1 W2\nquorum g\n"
    >>> policy = Policy.parse(text)
    >>> cp = Checkpoint("example.com/log", 0, MerkleLog.in_memory().root())
    >>> signed = SignedCheckpoint.sign(cp, [log])
    >>> cosigned = signed.with_signatures(
    ...     [w[0].cosign(cp, timestamp=1), w[2].cosign(cp, timestamp=1)]
    ... )
    >>> sorted(policy.verify(cosigned.to_bytes(), "example.com/log").witnesses)
    ['W0', 'W2']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint
from computewatch.crypto._cosignature import CosignerKey
from computewatch.crypto._note import NoteVerifier
from computewatch.errors import FormatError, IntegrityError, VerificationFailed

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_POLICY_BYTES",
    "MAX_POLICY_ITEMS",
    "Policy",
    "PolicyGroup",
    "PolicyLog",
    "PolicyWitness",
    "QuorumNotMet",
    "WitnessedCheckpoint",
]

#: Largest policy file accepted, in bytes.
MAX_POLICY_BYTES = 1 << 16
#: Most logs, witnesses and groups (each) a policy may define (the spec asks for >= 32).
MAX_POLICY_ITEMS = 256
_NONE = "none"
_FIELDS = re.compile("[ \t]+")
_ALLOWED = frozenset({0x09, 0x0A, *range(0x20, 0x7F), *range(0x80, 0x100)})


class QuorumNotMet(VerificationFailed):
    """A checkpoint's valid cosignatures do not satisfy the policy's quorum."""

    kind = "quorum not met"


@dataclass(frozen=True)
class PolicyLog:
    """A trusted log: its note key (whose name is its origin) and optional URL."""

    key: NoteVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    """A known witness: its policy name, cosigner key and optional submission URL."""

    name: str
    key: CosignerKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    """A group that witnesses a checkpoint when ``threshold`` of its members do."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """A checkpoint accepted under a policy.

    Attributes:
        checkpoint: The verified checkpoint.
        signed: The signed note it came in (log signature and cosignatures).
        witnesses: Policy names of the witnesses whose cosignature verified.
        timestamps: Their cosignature timestamps, by witness name.
    """

    checkpoint: Checkpoint
    signed: SignedCheckpoint
    witnesses: frozenset[str]
    timestamps: Mapping[str, int] = field(default_factory=dict)


def _lines(data: bytes | str, source: str) -> list[tuple[int, list[str]]]:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_POLICY_BYTES:
        msg = f"{source}: expected at most {MAX_POLICY_BYTES} bytes, got {len(raw)}"
        raise FormatError(msg)
    for pos, byte in enumerate(raw):
        if byte not in _ALLOWED:
            lineno = raw.count(b"\n", 0, pos) + 1
            msg = f"{source} line {lineno}: control character 0x{byte:02x} not allowed"
            raise FormatError(msg)
    text = raw.decode("utf-8", errors="surrogateescape")  # high octets stay opaque
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip(" \t")
        if stripped and not stripped.startswith("#"):
            out.append((n, _FIELDS.split(stripped)))  # space and tab only, not Unicode spaces
    return out


def _url(fields: list[str], at: int, where: str) -> str | None:
    if len(fields) > at + 1:
        msg = f"{where}: expected at most {at + 1} fields, got {len(fields)}"
        raise FormatError(msg)
    return fields[at] if len(fields) == at + 1 else None


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.logs: list[PolicyLog] = []
        self.witnesses: list[PolicyWitness] = []
        self.groups: list[PolicyGroup] = []
        self.quorum: str | None = None
        self.names: set[str] = set()
        self.used: set[str] = set()
        self.keys: set[bytes] = set()

    def _key(self, raw: bytes, where: str) -> None:
        if raw in self.keys:
            msg = f"{where}: duplicate public key (already listed in this policy)"
            raise FormatError(msg)
        self.keys.add(raw)

    def _name(self, name: str, where: str) -> None:
        if name == _NONE:
            msg = f"{where}: the name 'none' is reserved"
            raise FormatError(msg)
        if name in self.names:
            msg = f"{where}: the name {name!r} is already defined"
            raise FormatError(msg)
        self.names.add(name)

    def line(self, n: int, fields: list[str]) -> None:
        where = f"{self.source} line {n}"
        keyword = fields[0]
        if self.quorum is not None and keyword == "quorum":
            msg = f"{where}: expected exactly one quorum line, got a second"
            raise FormatError(msg)
        handler = {
            "log": self._log,
            "witness": self._witness,
            "group": self._group,
            "quorum": self._quorum,
        }.get(keyword)
        if handler is None:
            msg = (
                f"{where}: unknown keyword {keyword[:30]!r} (expected log, witness, group, quorum)"
            )
            raise FormatError(msg)
        handler(fields, where)

    def _log(self, fields: list[str], where: str) -> None:
        if len(fields) < 2:  # noqa: PLR2004 - keyword and vkey
            msg = f"{where}: expected 'log <vkey> [<url>]'"
            raise FormatError(msg)
        try:
            key = NoteVerifier.from_vkey(fields[1])
        except FormatError as e:
            msg = f"{where}: log key: {e.message}"
            raise FormatError(msg) from e
        self._key(key.public_key, where)
        self.logs.append(PolicyLog(key, _url(fields, 2, where)))

    def _witness(self, fields: list[str], where: str) -> None:
        if len(fields) < 3:  # noqa: PLR2004 - keyword, name and vkey
            msg = f"{where}: expected 'witness <name> <vkey> [<url>]'"
            raise FormatError(msg)
        try:
            key = CosignerKey.from_vkey(fields[2])
        except FormatError as e:
            msg = f"{where}: witness key: {e.message}"
            raise FormatError(msg) from e
        self._name(fields[1], where)
        self._key(key.public_key, where)
        self.witnesses.append(PolicyWitness(fields[1], key, _url(fields, 3, where)))

    def _group(self, fields: list[str], where: str) -> None:
        if len(fields) < 4:  # noqa: PLR2004 - keyword, name, threshold, a member
            msg = f"{where}: expected 'group <name> <all|any|k> <member>...' with >= 1 member"
            raise FormatError(msg)
        name, k, members = fields[1], fields[2], tuple(fields[3:])
        for m in members:
            if m == _NONE or m not in self.names:
                msg = f"{where}: group member {m[:40]!r} is not a witness or group defined above"
                raise FormatError(msg)
            if m in self.used:
                msg = f"{where}: {m[:40]!r} is already listed as a group member"
                raise FormatError(msg)
            self.used.add(m)
        if k == "all":
            threshold = len(members)
        elif k == "any":
            threshold = 1
        elif k.isascii() and k.isdigit() and (k == "0" or not k.startswith("0")):
            threshold = int(k)
        else:
            msg = f"{where}: threshold expected all, any or a decimal, got {k[:20]!r}"
            raise FormatError(msg)
        if not 1 <= threshold <= len(members):
            msg = f"{where}: threshold expected 1 <= k <= {len(members)}, got {threshold}"
            raise FormatError(msg)
        self._name(name, where)
        self.groups.append(PolicyGroup(name, threshold, members))

    def _quorum(self, fields: list[str], where: str) -> None:
        if len(fields) != 2:  # noqa: PLR2004 - keyword and name
            msg = f"{where}: expected 'quorum <name>'"
            raise FormatError(msg)
        if fields[1] != _NONE and fields[1] not in self.names:
            msg = f"{where}: quorum {fields[1][:40]!r} is not a witness or group defined above"
            raise FormatError(msg)
        self.quorum = fields[1]


@dataclass(frozen=True)
class Policy:
    """A parsed tlog-policy: logs, witnesses, groups and the quorum (valid once built).

    Build one with `Policy.parse`, `Policy.for_logs` (no witnesses) or
    `Policy.build`.
    """

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    def __post_init__(self) -> None:
        """Re-check the invariants by re-parsing the policy's own text."""
        for what, items in (("logs", self.logs), ("witnesses", self.witnesses)):
            if len(items) > MAX_POLICY_ITEMS:
                msg = f"policy: expected at most {MAX_POLICY_ITEMS} {what}, got {len(items)}"
                raise FormatError(msg)
        if len(self.groups) > MAX_POLICY_ITEMS:
            msg = f"policy: expected at most {MAX_POLICY_ITEMS} groups, got {len(self.groups)}"
            raise FormatError(msg)
        _check_policy(self)

    @classmethod
    def parse(cls, data: bytes | str, source: str = "policy") -> Policy:
        """Parse a policy file's bytes.

        Raises:
            FormatError: Naming ``source`` and the line that breaks a rule.
        """
        builder = _Builder(source)
        for n, fields in _lines(data, source):
            builder.line(n, fields)
        if builder.quorum is None:
            msg = f"{source}: expected exactly one quorum line, got none"
            raise FormatError(msg)
        return cls(
            tuple(builder.logs), tuple(builder.witnesses), tuple(builder.groups), builder.quorum
        )

    @classmethod
    def for_logs(cls, logs: Iterable[NoteVerifier]) -> Policy:
        """A policy trusting ``logs`` with no witnesses (``quorum none``)."""
        return cls(tuple(PolicyLog(k) for k in logs), (), (), _NONE)

    def to_text(self) -> str:
        """The policy file text (parses back to an equal policy)."""
        lines = [f"log {g.key.vkey}" + (f" {g.url}" if g.url else "") for g in self.logs]
        lines += [
            f"witness {w.name} {w.key.vkey}" + (f" {w.url}" if w.url else "")
            for w in self.witnesses
        ]
        for g in self.groups:
            k = "all" if g.threshold == len(g.members) else str(g.threshold)
            lines.append(f"group {g.name} {k} {' '.join(g.members)}")
        lines.append(f"quorum {self.quorum}")
        return "\n".join(lines) + "\n"

    def log_keys(self, origin: str) -> list[NoteVerifier]:
        """The policy's keys for the log ``origin`` (names must equal the origin)."""
        return [g.key for g in self.logs if g.key.name == origin]

    def satisfied(self, witnessed: Iterable[str]) -> bool:
        """Whether the quorum holds when exactly the witnesses ``witnessed`` cosigned."""
        seen = set(witnessed)
        groups = {g.name: g for g in self.groups}

        def holds(name: str) -> bool:
            group = groups.get(name)
            if group is None:
                return name in seen
            return sum(holds(m) for m in group.members) >= group.threshold

        return self.quorum == _NONE or holds(self.quorum)

    def verify(
        self,
        data: bytes | str | SignedCheckpoint,
        origin: str,
        *,
        now: float | None = None,
        max_future_s: float = 300.0,
    ) -> WitnessedCheckpoint:
        """Accept a signed checkpoint under this policy, or raise.

        Args:
            data: The signed checkpoint (log signature plus cosignatures).
            origin: The log the caller expects.
            now: If given, cosignatures stamped later than ``now +
                max_future_s`` do not count.
            max_future_s: Tolerated clock skew for cosignature timestamps.

        Raises:
            FormatError: Malformed note.
            IntegrityError: Wrong origin, no valid signature by a policy log
                for it, or a known witness's cosignature that does not verify.
            QuorumNotMet: The valid cosignatures do not satisfy the quorum.
        """
        signed = data if isinstance(data, SignedCheckpoint) else SignedCheckpoint.parse(data)
        keys = self.log_keys(origin)
        if not keys:
            msg = f"policy: no log for origin {origin!r}"
            raise IntegrityError(msg)
        checkpoint = signed.verify(keys, origin)
        stamps: dict[str, int] = {}
        for w in self.witnesses:
            for line in signed.note.signatures:
                if not w.key.matches(line):
                    continue
                ts = w.key.verify(checkpoint, line)
                if ts is None:
                    msg = (
                        f"checkpoint {origin} size {checkpoint.size}: cosignature by witness "
                        f"{w.name} ({w.key.name}+{w.key.key_id:08x}) does not verify"
                    )
                    raise IntegrityError(msg)
                if now is None or ts <= now + max_future_s:
                    stamps[w.name] = ts
        if not self.satisfied(stamps):
            msg = (
                f"checkpoint {origin} size {checkpoint.size}: cosigned by "
                f"{len(stamps)}/{len(self.witnesses)} known witnesses "
                f"({', '.join(sorted(stamps)) or 'none'}); quorum {self.quorum!r} not met"
            )
            raise QuorumNotMet(msg)
        return WitnessedCheckpoint(checkpoint, signed, frozenset(stamps), stamps)


def _check_policy(policy: Policy) -> None:
    """Check a directly built policy by the parser's rules (parse its own text)."""
    builder = _Builder("policy")
    for n, fields in enumerate((_FIELDS.split(t) for t in policy.to_text().splitlines()), 1):
        builder.line(n, fields)
