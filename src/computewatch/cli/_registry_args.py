"""Arguments of `computewatch registry ...`: checked text, URLs, keys, request bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from computewatch._validate import int_in_range, text
from computewatch.cli._paths import input_file, output_file
from computewatch.crypto import NoteVerifier, VerifyingKey
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.supplychain import RegistryClient

_MAX_JSON = 1 << 20

__all__ = [
    "check_request_options",
    "checked_text",
    "client_for",
    "log_verifier",
    "read_input",
    "request_body",
]


def checked_text(name: str, value: str, *, max_len: int = 256) -> str:
    """`value` if it is 1..max_len printable UTF-8 characters, else a one-line FormatError."""
    text(name, value, max_len=max_len)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # bytes from argv that are not UTF-8
        msg = f"{name} {value!r:.60}: expected UTF-8 text, got bytes that are not"
        raise FormatError(msg) from e
    return value


def log_verifier(value: str) -> NoteVerifier:
    path = Path(value)
    text = value
    if "+" not in value or path.is_file():
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as e:
            msg = f"--log-key {value!r:.60}: neither a vkey nor a readable file ({e})"
            raise FormatError(msg) from e
    return NoteVerifier.from_vkey(text)


def _server_url(server: str) -> str:
    """`server` if it is an http(s) URL with a host, else a one-line FormatError."""
    import httpx  # noqa: PLC0415 - keep the CLI fast

    shown = f"--server {server!r:.80}"
    try:
        url = httpx.URL(server)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        msg = f"{shown}: expected a URL such as http://127.0.0.1:8000, got an invalid one ({e})"
        raise FormatError(msg) from e
    if url.scheme not in {"http", "https"} or not url.host or not server.isprintable():
        msg = f"{shown}: expected an http:// or https:// URL with a host"
        raise FormatError(msg)
    return server


def client_for(
    server: str, log_key: str, policy: Path | None = None, state: Path | None = None
) -> RegistryClient:
    """A client of the registry at `server` trusting `log_key` (and `policy`'s quorum).

    With `state`, the client remembers the newest checkpoint it accepted and
    refuses rollbacks and forks (`TrustedCheckpoints`).
    """
    from computewatch.crypto import Policy, TrustedCheckpoints  # noqa: PLC0415
    from computewatch.supplychain import RegistryClient  # noqa: PLC0415 - keep the CLI fast

    url = _server_url(server)
    key = log_verifier(log_key)
    trust = Policy.for_logs([key])
    if policy is not None:
        trust = Policy.parse(read_input(policy, "--policy"), str(policy))
        if key not in [g.key for g in trust.logs]:
            msg = f"--policy {policy}: does not list the --log-key {key.name}+{key.key_id:08x}"
            raise FormatError(msg)
    memory = None if state is None else TrustedCheckpoints.open(state, trust)
    return RegistryClient(url, trust, key.name, state=memory)


def read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        msg = f"{what} {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e


def _json_file(path: Path, what: str) -> Any:
    """The JSON in ``path`` (at most 1 MiB), or a one-line FormatError."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_JSON + 1)
    except OSError as e:
        msg = f"{what} {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if len(data) > _MAX_JSON:
        msg = f"{what} {path}: expected at most {_MAX_JSON} bytes of JSON"
        raise FormatError(msg)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        msg = f"{what} {path}: not JSON ({e.__class__.__name__})"
        raise FormatError(msg) from e


def _location_body(kind: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The body of a license-region (--serial, --region) or location-check (--check) request."""
    from computewatch.supplychain import parse_region  # noqa: PLC0415 - keep the CLI fast

    if kind == "license-region":
        if opts["region"] is None:
            msg = "license-region: expected --region FILE (the licensed region's JSON)"
            raise FormatError(msg)
        region = parse_region(_json_file(opts["region"], "--region"), "--region")
        return {"serials": opts["serial"], "region": region.to_json()}
    if opts["check"] is None:
        msg = "location-check: expected --check FILE (what `location check --json` printed)"
        raise FormatError(msg)
    doc = _json_file(opts["check"], "--check")
    if not isinstance(doc, dict):
        msg = f"--check {opts['check']}: expected a JSON object"
        raise FormatError(msg)
    return {"check": {k: v for k, v in doc.items() if k != "log_index"}}


def request_body(kind: str, opts: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 - one case per kind
    serials: list[str] = opts["serial"]
    note = {"note": opts["note"]} if opts["note"] else {}
    if kind in {"license-region", "location-check"}:
        return _location_body(kind, opts)
    if kind == "register-actor":
        if not (opts["new_id"] and opts["role"] and opts["new_key"]):
            msg = "register-actor: expected --id, --role and --new-key"
            raise FormatError(msg)
        body = {"id": opts["new_id"], "role": opts["role"]}
        body["key"] = VerifyingKey.load(opts["new_key"]).raw.hex()
        if opts["name"]:
            body["name"] = opts["name"]
        return body
    if kind == "fabricate":
        chips = []
        for spec in opts["chip"]:
            serial, sep, pem = spec.partition("=")
            if not sep:
                msg = f"--chip {spec!r}: expected SERIAL=PUBLIC_KEY_PEM"
                raise FormatError(msg)
            key = VerifyingKey.load(pem).raw.hex()
            flags = sorted(set(opts["capability"]))
            chips.append(
                {"serial": serial, "key": key, "model": opts["model"], "capabilities": flags}
            )
        if not chips:
            msg = "fabricate: expected at least one --chip SERIAL=PUBLIC_KEY_PEM"
            raise FormatError(msg)
        return {"chips": chips}
    if kind in {"transfer", "resell"}:
        if not opts["to"]:
            msg = f"{kind}: expected --to RECEIVER"
            raise FormatError(msg)
        return {"serials": serials, "to": opts["to"], **note}
    if kind == "inspect":
        if not opts["found_holder"]:
            msg = "inspect: expected --found-holder ACTOR"
            raise FormatError(msg)
        return {
            "serials": serials,
            "found_holder": opts["found_holder"],
            "seal_intact": not opts["seal_broken"],
            **note,
        }
    site = {"site": opts["site"]} if opts["site"] and kind == "register-owner" else {}
    return {"serials": serials, **note, **site}


def check_request_options(
    texts: dict[str, str | None],
    lists: dict[str, list[str]],
    counter: int | None,
    new_key: Path | None,
    files: dict[str, Path | None] | None = None,
) -> None:
    """Refuse any bad option of `request`, also one the request's kind does not use."""
    from computewatch.supplychain import parse_check  # noqa: PLC0415 - keep the CLI fast

    files = files or {}
    if files.get("region") is not None:
        _location_body("license-region", {"serial": [], "region": files["region"]})
    if files.get("check") is not None:
        body = _location_body("location-check", {"check": files["check"]})
        parse_check(body["check"], f"--check {files['check']}")
    for flag, value in texts.items():
        if value is not None:
            checked_text(flag, value, max_len=4096)
    for flag, values in lists.items():
        for value in values:
            checked_text(flag, value, max_len=4096)
    if counter is not None:
        int_in_range("--counter", counter, 1, 2**63 - 1)
    if new_key is not None:
        VerifyingKey.load(new_key)  # a bad key file is refused whatever the kind


# -- options the registry commands share

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
Server = Annotated[str, typer.Option("--server", help="Registry URL, e.g. http://127.0.0.1:8000.")]
LogKey = Annotated[
    str, typer.Option("--log-key", help="The log's note verifier key (vkey text, or a file).")
]
PolicyFile = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="tlog-policy file: also require its witness quorum.",
        parser=input_file(),
    ),
]
StateFile = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="SQLite file of accepted checkpoints: refuse rollbacks/forks.",
        parser=output_file(),
    ),
]


Registrar = Annotated[
    Path,
    typer.Option("--registrar", help="Registrar public key (PEM).", parser=input_file()),
]
