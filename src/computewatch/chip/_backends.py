"""Choosing a secure-element backend by URI (``file:`` or ``tpm:``).

Example::

    >>> from computewatch.chip import open_secure_element, provision_secure_element
    >>> se = provision_secure_element("file:chip-0001/se", "CW-0001")
    >>> open_secure_element(se.uri).serial
    'CW-0001'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.chip._file_se import FileSecureElement
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.chip._interface import SecureElement

__all__ = ["SCHEMES", "open_secure_element", "provision_secure_element"]

#: The URI schemes with a backend.
SCHEMES = ("file", "tpm")


def _split(uri: str) -> tuple[str, str]:
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        msg = (
            f"secure element URI {uri!r}: expected file:/path/to/folder or tpm:HOST:PORT "
            f"(schemes: {', '.join(SCHEMES)})"
        )
        raise FormatError(msg)
    return scheme, rest


def _tpm() -> type[SecureElement]:
    try:
        from computewatch.chip._tpm import TpmSecureElement  # noqa: PLC0415 - optional backend
    except ImportError as e:
        msg = (
            "secure element tpm: the TPM backend needs the 'tpm' extra "
            f"(pip install 'computewatch[tpm]') and Debian's libtss2 ({e})"
        )
        raise FormatError(msg) from e
    return TpmSecureElement


def open_secure_element(uri: str) -> SecureElement:
    """Open the provisioned secure element at ``uri``."""
    scheme, rest = _split(uri)
    if scheme == "file":
        return FileSecureElement.open(rest)
    return _tpm().open(uri)  # type: ignore[attr-defined,no-any-return]


def provision_secure_element(uri: str, serial: str) -> SecureElement:
    """Provision a new secure element at ``uri`` with the burned-in ``serial``."""
    scheme, rest = _split(uri)
    if scheme == "file":
        return FileSecureElement.provision(rest, serial)
    return _tpm().provision(uri, serial)  # type: ignore[attr-defined,no-any-return]
