"""`RegistrySettings`: what a registry server is configured with; no default secrets.

The log's signing key (a C2SP note key in its ``PRIVATE+KEY+...`` text form)
and the registrar's public key have no defaults: a server will not start
without them. A key file that its group or others may read is refused (fix
with ``chmod 600``), and so is a placeholder key (a seed of one repeated
byte, like the all-zero keys of examples). The key's name is the log's
origin, which requests must name.

Example:
    >>> settings = RegistrySettings(                            # doctest: +SKIP
    ...     db_url="sqlite:///registry.db",
    ...     log_key_file=Path("log.skey"),
    ...     registrar_key_file=Path("registrar.key.pub"),
    ... )
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from computewatch._validate import positive, positive_int
from computewatch.crypto import NoteSigner, Policy, VerifyingKey
from computewatch.crypto._policy import MAX_POLICY_BYTES
from computewatch.errors import FormatError
from computewatch.supplychain._model import check_actor_id
from computewatch.supplychain._reports import ReportPolicy
from computewatch.supplychain._store import RegistryStore

__all__ = ["RegistrySettings", "write_log_key"]

_MAX_KEY_FILE = 4096


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """A registry server's settings (validated at construction).

    Attributes:
        db_url: ``sqlite:///PATH`` (default backend) or ``postgresql://...``.
        log_key_file: The log's note signing key (``PRIVATE+KEY+<origin>+...``), mode 0600.
        registrar_key_file: The registrar's public key (PEM).
        registrar_id: The registrar's actor id.
        max_skew_s: How far a request's time may be from the server's clock.
        max_batch: Most writes committed in one transaction (group commit).
        queue_limit: Most writes waiting for the writer; more get 503.
        write_timeout_s: How long a write waits for its commit before 503.
        max_body_bytes: Largest request body accepted.
        policy: Thresholds of the discrepancy report.
        witness_policy_file: A tlog-policy file; every checkpoint is pushed to
            its witnesses that have a URL (None: the log is not witnessed).
        witness_timeout_s: How long one witness may take to answer.
    """

    db_url: str
    log_key_file: Path
    registrar_key_file: Path
    registrar_id: str = "registrar"
    max_skew_s: float = 300.0
    max_batch: int = 512
    queue_limit: int = 10_000
    write_timeout_s: float = 30.0
    max_body_bytes: int = 1 << 20
    policy: ReportPolicy = field(default_factory=ReportPolicy)
    witness_policy_file: Path | None = None
    witness_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        """Check every field (`ParameterError` or `FormatError` naming it)."""
        db_url: object = self.db_url
        if not isinstance(db_url, str) or not db_url:
            msg = "registry settings db_url: expected a database URL, got none"
            raise FormatError(msg)
        for name in ("log_key_file", "registrar_key_file"):
            value = getattr(self, name)
            if not isinstance(value, Path):
                msg = f"registry settings {name}: expected a path, got {value!r:.60} (no default)"
                raise FormatError(msg)
        check_actor_id(self.registrar_id, "registry settings registrar_id")
        positive("max_skew_s", self.max_skew_s)
        positive_int("max_batch", self.max_batch)
        positive_int("queue_limit", self.queue_limit)
        positive("write_timeout_s", self.write_timeout_s)
        positive_int("max_body_bytes", self.max_body_bytes)
        positive("witness_timeout_s", self.witness_timeout_s)

    def load_signer(self) -> NoteSigner:
        """Read the log's note key, refusing unsafe or placeholder keys.

        Raises:
            FormatError: Missing, unreadable, readable by others, malformed,
                or a placeholder seed.
        """
        path = self.log_key_file
        try:
            info = path.stat()
            text = path.read_text(encoding="ascii")[:_MAX_KEY_FILE].strip()
        except (OSError, UnicodeDecodeError) as e:
            msg = f"registry log key {path}: cannot read it ({e})"
            raise FormatError(msg) from e
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            msg = (
                f"registry log key {path}: expected permissions 0600, got {mode:04o}; "
                f"fix with: chmod 600 {path}"
            )
            raise FormatError(msg)
        signer = NoteSigner.from_skey(text)
        seed = base64.b64decode(text.split("+", 4)[4])[1:]  # from_skey checked the form
        if len(set(seed)) <= 1:
            msg = (
                f"registry log key {path}: a placeholder key (a seed of one repeated byte); "
                "generate a real one with 'computewatch registry keygen'"
            )
            raise FormatError(msg)
        return signer

    def load_witness_policy(self) -> Policy | None:
        """Read the witness policy file, if one is configured.

        Raises:
            FormatError: Unreadable or not a valid tlog-policy.
        """
        path = self.witness_policy_file
        if path is None:
            return None
        try:
            data = path.read_bytes()[: MAX_POLICY_BYTES + 1]
        except OSError as e:
            msg = f"registry witness policy {path}: cannot read it ({e.strerror})"
            raise FormatError(msg) from e
        return Policy.parse(data, str(path))

    def load_registrar_key(self) -> VerifyingKey:
        """Read the registrar's public key (PEM)."""
        return VerifyingKey.load(self.registrar_key_file)

    def open_store(self, origin: str) -> RegistryStore:
        """Open the registry database for the log ``origin``."""
        return RegistryStore.open(
            self.db_url,
            origin=origin,
            registrar_id=self.registrar_id,
            registrar_key=self.load_registrar_key(),
        )


def write_log_key(path: str | os.PathLike[str], origin: str) -> NoteSigner:
    """Generate a note key named ``origin`` and write it to a new file, mode 0600.

    Raises:
        FormatError: The file exists or cannot be written, or ``origin`` is
            not a valid key name.
    """
    signer = NoteSigner.generate(origin)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        msg = f"registry log key {path}: cannot create it ({e.strerror})"
        raise FormatError(msg) from e
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(signer.skey + "\n")
        f.flush()
        os.fsync(f.fileno())
    return signer
