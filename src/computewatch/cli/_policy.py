"""``--policy FILE``: a whole verification policy from a JSON file (private).

The file holds `VerificationPolicy.to_dict`'s form; a missing field takes
its default, anything else wrong is one line naming the file and the field
(exit 2). Options such as ``--budget`` override single fields on top.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from computewatch.cli._paths import input_file
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.verification import VerificationPolicy

__all__ = ["MAX_POLICY_BYTES", "PolicyOption", "read_policy"]

#: Largest policy file read.
MAX_POLICY_BYTES = 64 << 10

#: The ``--policy FILE`` option of the commands that hand a policy to the trusted cluster.
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="The whole verification policy (JSON, VerificationPolicy.to_dict's fields; "
        "docs/audit.md).",
        parser=input_file(MAX_POLICY_BYTES),
    ),
]


def read_policy(path: Path | None, **overrides: Any) -> VerificationPolicy:
    """The policy in `path` (defaults if None), with the non-None `overrides` applied.

    Raises:
        FormatError: the file cannot be read, is not JSON or holds a bad field.
    """
    from computewatch.verification import VerificationPolicy  # noqa: PLC0415 - keep the CLI fast

    policy = VerificationPolicy()
    if path is not None:
        try:
            data = path.read_bytes()[: MAX_POLICY_BYTES + 1]
            doc = json.loads(data) if len(data) <= MAX_POLICY_BYTES else None
        except OSError as e:
            msg = f"--policy {path}: cannot read ({e.strerror})"
            raise FormatError(msg) from e
        except ValueError as e:
            msg = f"--policy {path}: not JSON ({' '.join(str(e).split())[:120]})"
            raise FormatError(msg) from e
        if doc is None:
            msg = f"--policy {path}: larger than {MAX_POLICY_BYTES} bytes"
            raise FormatError(msg)
        policy = VerificationPolicy.from_dict(doc, where=f"--policy {path}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(policy, **given) if given else policy
