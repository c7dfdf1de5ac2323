"""`computewatch location ...`: landmarks, chip answers and location checks (docs/location.md)."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from computewatch._validate import int_in_range
from computewatch.chip import LocationAnswerer, LogState, genesis_hash, provision_secure_element
from computewatch.cli._output import emit_json, say
from computewatch.cli._paths import input_file, input_folder, output_file
from computewatch.crypto import Envelope, MerkleLog, SigningKey, VerifyingKey
from computewatch.errors import FormatError, VerificationFailed

if TYPE_CHECKING:
    from computewatch.supplychain import Landmark

#: Most chips of each kind `location simulate` runs (about a minute of work).
MAX_SIM_TRIALS = 30_000

app = typer.Typer(
    help="Where is the chip? Delay-based location checks (docs/location.md).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
_MAX_FILE = 4 << 20


def _read_json(path: Path, what: str) -> Any:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as e:
        msg = f"{what} {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if len(data) > _MAX_FILE:
        msg = f"{what} {path}: over {_MAX_FILE} bytes"
        raise FormatError(msg)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        msg = f"{what} {path}: not JSON ({e.__class__.__name__})"
        raise FormatError(msg) from e


@app.command("landmark")
def landmark_cmd(
    landmark_id: Annotated[str, typer.Option("--id", help="The landmark's id.")],
    key: Annotated[
        Path,
        typer.Option("--key", help="Its measurement signing key (private).", parser=input_file()),
    ],
    bind: Annotated[str, typer.Option("--bind", help="UDP address HOST:PORT to serve.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a nonce stays valid.")] = 2.0,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file", help="Write the bound address here when up.", parser=output_file()
        ),
    ] = None,
    serve_for: Annotated[
        float | None, typer.Option("--serve-for", help="Stop after this many seconds.")
    ] = None,
) -> None:
    """Serve a landmark: issue nonces, time the answers, sign the measurements."""
    from computewatch.supplychain import LandmarkCore, LandmarkServer, parse_address  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed

    core = LandmarkCore(landmark_id, SigningKey.load(key), timeout_s=timeout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LandmarkServer(core, parse_address(bind)) as server:
        host, port = server.address
        if ready_file is not None:
            ready_file.write_text(f"{host}:{port}\n")
        say(f"landmark {landmark_id} serving on udp {host}:{port}")
        deadline = None if serve_for is None else time.monotonic() + serve_for
        try:
            while not stop.wait(0.2):
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            pass


def _landmark_option(value: str) -> tuple[str, tuple[str, int]]:
    from computewatch.supplychain import parse_address  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed

    name, sep, address = value.partition("=")
    if not sep or not name:
        msg = f"--landmark: expected ID=HOST:PORT, got {value!r:.80}"
        raise FormatError(msg)
    return name, parse_address(address)


@app.command("answer")
def answer_cmd(
    chip: Annotated[Path, typer.Option("--chip", help="The chip's folder.", parser=input_folder())],
    landmarks: Annotated[
        list[str], typer.Option("--landmark", help="ID=HOST:PORT of a landmark (repeat).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Write the signed measurements here (JSON).", parser=output_file()
        ),
    ],
    probes: Annotated[int, typer.Option("--probes", help="Measurements per landmark.")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait per reply.")] = 2.0,
) -> None:
    """Answer landmarks' nonces with the chip's key; keep their signed measurements."""
    from computewatch.supplychain import measure_at  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed

    targets = [_landmark_option(v) for v in landmarks]
    got: list[str] = []
    with LocationAnswerer.open(chip) as answerer:
        for _name, address in targets:
            envs = measure_at(
                answerer.answer, str(answerer.serial), address, probes=probes, timeout_s=timeout
            )
            got.extend(e.to_json().decode() for e in envs)
    out.write_text(json.dumps({"measurements": got}) + "\n")
    say(f"wrote {out}: {len(got)} measurements from {len(targets)} landmark(s)")


def _landmarks(path: Path) -> list[Landmark]:
    from computewatch.supplychain import Landmark  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed

    doc = _read_json(path, "--landmarks")
    if not isinstance(doc, list) or len(doc) > 256:  # noqa: PLR2004 - a bound, said in the message
        msg = f"--landmarks {path}: expected a list of at most 256 landmarks"
        raise FormatError(msg)
    return [Landmark.from_json(d) for d in doc]


@app.command("check")
def check_cmd(
    serial: Annotated[str, typer.Option("--serial", help="The chip's serial.")],
    chip_key: Annotated[
        Path, typer.Option("--chip-key", help="Its registered key (PEM).", parser=input_file())
    ],
    region: Annotated[
        Path, typer.Option("--region", help="Its licensed region (JSON).", parser=input_file())
    ],
    landmarks: Annotated[
        Path, typer.Option("--landmarks", help="Trusted landmarks (JSON).", parser=input_file())
    ],
    measurements: Annotated[
        Path,
        typer.Option("--measurements", help="What `location answer` wrote.", parser=input_file()),
    ],
    km_per_ms: Annotated[
        float, typer.Option("--km-per-ms", help="100 (fibre) or 149.9 (free-space links).")
    ] = 100.0,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", help="Append the check to this location log (SQLite).", parser=output_file()
        ),
    ] = None,
    log_key: Annotated[
        Path | None,
        typer.Option("--log-key", help="The checker's signing key for --log.", parser=input_file()),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a chip's measurements against its licensed region; exit 1 unless inside."""
    from computewatch.supplychain import (  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed
        LicensedRegion,
        LocationLog,
        LocationPolicy,
        check_location,
    )

    doc = _read_json(measurements, "--measurements")
    items = doc.get("measurements") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        msg = f"--measurements {measurements}: expected {{'measurements': [envelope JSON, ...]}}"
        raise FormatError(msg)
    envs = [Envelope.from_json(i) for i in items[:257]]
    check = check_location(
        serial,
        VerifyingKey.load(chip_key),
        LicensedRegion.from_json(_read_json(region, "--region")),
        _landmarks(landmarks),
        envs,
        now_us=time.time_ns() // 1000,
        policy=LocationPolicy(km_per_ms=km_per_ms),
    )
    if log is not None:
        if log_key is None:
            msg = "--log needs --log-key (the checker signs every record)"
            raise FormatError(msg)
        signer = SigningKey.load(log_key)
        with MerkleLog.open(log) as merkle:
            check = LocationLog(merkle, signer.verifying_key, signer).record(check)
    if as_json:
        emit_json(check.to_json())
    else:
        say(check.summary)
    if not check.inside:
        raise typer.Exit(VerificationFailed.exit_code)


@app.command("simulate")
def simulate_cmd(
    trials: Annotated[int, typer.Option("--trials", help="Chips of each kind.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="The campaign's random seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON here.", parser=output_file())
    ] = None,
) -> None:
    """Flag rates of honest and diverted chips over the published latency model."""
    from computewatch.supplychain import run_campaign  # noqa: PLC0415 - FastAPI and SQLAlchemy only when needed

    int_in_range("--trials", trials, 1, MAX_SIM_TRIALS)  # ~2 ms a trial: priced up front
    int_in_range("--seed", seed, 0, 2**128 - 1)
    with tempfile.TemporaryDirectory(prefix="cw-location-") as tmp:
        se = provision_secure_element(f"file:{tmp}/se", "CW-SIM-0")
        with LocationAnswerer(se, LogState(0, genesis_hash("CW-SIM-0"))) as answerer:
            result = run_campaign(answerer, trials=trials, seed=seed)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
    emit_json(result)
