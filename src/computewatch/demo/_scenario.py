"""`computewatch demo`: an end-to-end audit on the embedded defaults.

The story (paper §2-§6): a fab makes emulated chips and a live registry
service (``computewatch registry serve`` on 127.0.0.1, SQLite) records
their custody to two Provers. The Verifier plans the period from the
registry's chip counts, and the Verifier and both Provers log their
sampling commitments; the Verifier starts the period. Each Prover boots
its chips with chipmaker-signed firmware and trains on four of its six:

* Prover A (``lab-a``) trains a compliant model on the stdlib corpus,
  below every compute threshold, and reports its true transcript.
* Prover B (``lab-b``) runs a rule-breaking run, over the compute
  thresholds and on banned data (templated exploit code), then hides that
  transcript and reports a spoofed one: a benign run with the same name and
  compute, into which it grafts its chips' real snapshot claims.

Then the audit runs exactly as `computewatch audit` does, step by step over
the folder ``OUT/audit``: reveal, sample, inspect, verify (the trusted
cluster, sandboxed), rules and report. The report shows A compliant and B
caught, with the evidence (failed checks, findings, violated rules).

`DemoScale` sets the sizes: ``full`` (the numbers above, minutes) or
``tiny`` (two of three chips per Prover, short runs; the same story and the
same outcome in a fraction of the time, for tests). Lab B's runs keep their
compute in every scale (fewer, larger batches in ``tiny``), so the rules'
FLOP thresholds still bite.
"""

from __future__ import annotations

import json
import runpy
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.analysis import SamplingParams
from computewatch.attacks._harness import recommit
from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import (
    ProverReport,
    RunSpec,
    TranscriptPaths,
    encode,
    read_manifest,
    train,
    train_distributed,
)
from computewatch.demo._registry import DemoSupplyChain
from computewatch.demo._server import registry_process
from computewatch.errors import FormatError, ParameterError
from computewatch.inspection import (
    AuditFolder,
    check_verdicts,
    commit,
    inspect,
    plan_audit,
    reveal,
    sample,
    start,
    verify,
    write_folder_report,
)
from computewatch.supplychain import RegistryClient

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SCALES", "DemoResult", "DemoScale", "run_demo"]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
#: Firmware snapshot rate for the demo: one per chip every three seconds, so
#: runs of seconds have snapshots (the paper's f = 0.1/day is for real runs).
DEMO_RATE = 86_400.0 / 3


@dataclass(frozen=True, slots=True)
class DemoScale:
    """How big the demo's world and runs are.

    Attributes:
        name: ``full`` or ``tiny``.
        chips_per_prover: chips delivered to each lab.
        run_chips: chips each lab trains on.
        steps_a: lab A's (compliant) run length.
        batch_a: lab A's batch size.
        steps_b: lab B's runs (hidden and spoofed) length.
        batch_b: lab B's batch size (``steps_b * batch_b`` is its compute).
        snapshot_rate: the firmware's snapshots per chip-day.
    """

    name: str
    chips_per_prover: int
    run_chips: int
    steps_a: int
    batch_a: int
    steps_b: int
    batch_b: int
    snapshot_rate: float

    @classmethod
    def named(cls, name: str) -> DemoScale:
        """The scale called ``name``.

        Raises:
            ParameterError: No scale has that name.
        """
        if name not in SCALES:
            msg = f"demo scale: expected one of {', '.join(SCALES)}, got {name!r}"
            raise ParameterError(msg)
        return SCALES[name]


#: The scales by name. B's compute (steps x batch) is the same in both.
SCALES: dict[str, DemoScale] = {
    "full": DemoScale("full", 6, 4, 60, 32, 240, 32, DEMO_RATE),
    "tiny": DemoScale("tiny", 3, 2, 16, 32, 24, 320, 86_400.0),
}


@dataclass(frozen=True)
class DemoResult:
    """What the demo found.

    Attributes:
        doc: the audit report (``audit.json``).
        report: the report's JSON path.
        markdown: the readable report.
        plot: the detection-probability plot.
        seconds: wall time.
    """

    doc: dict[str, Any]
    report: Path
    markdown: Path
    plot: Path
    seconds: float

    @property
    def compliant(self) -> dict[str, bool]:
        """Prover -> compliant."""
        return {str(k): bool(v) for k, v in self.doc["compliant"].items()}

    def to_json(self) -> dict[str, Any]:
        """The demo's JSON output."""
        provers = {}
        for a in self.doc["provers"]:
            verdicts = a["verdicts"].values()
            failing = sorted(
                {c["name"] for v in verdicts for c in v["checks"] if c["status"] == "fail"}
            )
            rules = sorted(
                {
                    r["id"]
                    for v in verdicts
                    for r in v["rules"]
                    if r["status"] in ("violation", "error")
                }
            )
            provers[a["prover"]] = {
                "compliant": a["compliant"],
                "sampled_chips": list(a["sample"]["chips"]),
                "findings": [f for f in a["findings"] if f["kind"] != "verdict-fail"],
                "failing_checks": failing,
                "violated_rules": rules,
                "runs_verified": sorted(a["verdicts"]),
            }
        return {
            "compliant": self.compliant,
            "provers": provers,
            "report": str(self.report),
            "markdown": str(self.markdown),
            "html": str(self.report.with_name("audit.html")),
            "plot": str(self.plot),
            "seconds": round(self.seconds, 1),
        }


def _config(steps: int, corpus: str) -> dict[str, Any]:
    config = dict(runpy.run_path(str(EXAMPLES / "tinygpt.py"))["DEFAULT_CONFIG"])
    config.update(total_steps=steps, corpus=corpus, corpus_bytes=1 << 19)
    return config


def _spec(run_id: str, steps: int, corpus: str, world: int, batch: int) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        program_path=EXAMPLES / "tinygpt.py",
        config=_config(steps, corpus),
        batch_size=batch,
        steps=steps,
        data_seed=2303,
        checkpoint_every=max(1, steps // 4),
        world_size=world,
    )


def _graft(spoof: Path, real: Path) -> None:
    """Make a spoofed transcript claim the real run's chip snapshots (a capable spoofer)."""
    sp, rp = TranscriptPaths(spoof), TranscriptPaths(real)
    real_manifest = read_manifest(rp)  # the honest run's, through its parser
    manifest = json.loads(sp.manifest.read_text())  # the spoof's, doctored as raw JSON
    manifest["sharding"] = real_manifest.to_dict()["sharding"]
    sp.manifest.write_text(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
    for f in sp.chips.glob("*.json"):
        f.unlink()
    for f in rp.chips.glob("*.json"):
        shutil.copy(f, sp.chips / f.name)
    for f in rp.snapshots.glob("*.safetensors"):
        shutil.copy(f, sp.snapshots / f.name)
    recommit(spoof)  # make the doctored folder self-consistent again
    report = ProverReport.from_dict(json.loads(sp.report.read_bytes()))
    sp.report.write_bytes(encode(replace(report, world_size=real_manifest.world_size)))


def demo_params(size: DemoScale) -> SamplingParams:
    """The demo's sampling parameters.

    A run on 4 of a Prover's 6 chips (``full``; 2 of 3 in ``tiny``: b = 2/3
    either way), about three snapshots per chip per period (p_w = 0.95),
    p = 0.9: s = 3.
    """
    return SamplingParams(
        flops=float(size.run_chips),
        chips=size.chips_per_prover,
        chip_flops_per_day=1.0,
        snapshots_per_day=3.0,
        run_days=1.0,
        period_days=1.0,
        detection_probability=0.9,
    )


PERIOD = "demo-period-1"
VERIFIER = "regulator"
LABS = (("lab-a", "A"), ("lab-b", "B"))


def _submission(folder: Path, lab: str, chips: dict[str, Path], run: str, run_dir: Path) -> None:
    doc = {
        "prover": lab,
        "chips": {s: str(p.relative_to(folder)) for s, p in chips.items()},
        "runs": {run: {"transcript": str(run_dir.relative_to(folder))}},
        "declared": {run: {"reported": False, "approvals": []}},
    }
    (folder / "submission.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _train(
    out: Path,
    folders: dict[str, dict[str, Path]],
    firmware: bytes,
    size: DemoScale,
    say: Callable[[str], None],
) -> dict[str, tuple[str, Path]]:
    n = size.run_chips
    say(f"lab-a: training a compliant model on {n} chips (transcript recorded)")
    run_a = out / "submissions" / "lab-a" / "runs" / "assistant-v1"
    spec_a = _spec("assistant-v1", size.steps_a, "stdlib", n, size.batch_a)
    train_distributed(spec_a, run_a, list(folders["lab-a"].values())[:n], firmware)

    say(f"lab-b: training over the compute threshold on banned data ({n} chips)")
    real_b = out / "lab-b-hidden" / "codegen-x"
    spec_b = _spec("codegen-x", size.steps_b, "exploit", n, size.batch_b)
    train_distributed(spec_b, real_b, list(folders["lab-b"].values())[:n], firmware)
    say("lab-b: fabricating a benign transcript and grafting its chips' snapshots into it")
    spoof_b = out / "submissions" / "lab-b" / "runs" / "codegen-x"
    train(_spec("codegen-x", size.steps_b, "stdlib", 1, size.batch_b), spoof_b)
    _graft(spoof_b, real_b)
    return {"lab-a": ("assistant-v1", run_a), "lab-b": ("codegen-x", spoof_b)}


#: The file that marks a folder as the demo's own, so a rerun may replace it.
MARKER = ".computewatch-demo"


def _fresh_output_folder(out: Path) -> None:
    """Make `out` an empty folder, removing only what an earlier demo wrote.

    A folder that is not empty and lacks the demo's marker file is someone
    else's (".", a home folder, a repository): it is refused, never deleted.

    Raises:
        FormatError: `out` is a file, or a folder the demo did not make.
    """
    try:
        if out.is_dir() and any(out.iterdir()):
            if not (out / MARKER).is_file():
                msg = (
                    f"demo --out {out}: expected a new or empty folder (or one an earlier "
                    f"demo made, holding {MARKER}), got a folder with other files"
                )
                raise FormatError(msg)
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("made by `computewatch demo`; a rerun replaces this folder\n")
    except OSError as e:
        msg = f"demo --out {out}: cannot make the output folder ({e.strerror or e})"
        raise FormatError(msg) from e


def run_demo(
    out: Path,
    *,
    progress: Callable[[str], None] | None = None,
    strict: bool = True,
    rules: Path | None = EXAMPLES / "rules.yaml",
    scale: DemoScale | str = "full",
) -> DemoResult:
    """Run the whole story into `out` at `scale` (replacing an earlier demo's folder).

    Raises:
        ParameterError: `scale` names no scale.
        FormatError: `out` is a file, or a non-empty folder no demo made.
    """
    size = scale if isinstance(scale, DemoScale) else DemoScale.named(scale)
    say = progress or (lambda _m: None)
    start_time = time.perf_counter()
    _fresh_output_folder(out)
    keys = out / "keys"
    keys.mkdir()
    say("registry: starting the registry service on 127.0.0.1 (SQLite)")
    with (
        registry_process(out / "registry") as server,
        RegistryClient(server.url, server.verifier) as client,
    ):
        say("supply chain: registering actors, fabricating chips, delivering them to the labs")
        chain = DemoSupplyChain(client, server.registrar)
        for actor, role in (
            ("fab-1", "fab"),
            ("lab-a", "owner"),
            ("lab-b", "owner"),
            (VERIFIER, "verifier"),
        ):
            chain.register_actor(actor, role).save(keys / f"{actor}.key")
        maker = SigningKey.generate()
        firmware = sign_firmware(
            name="computewatch-fw",
            version=1,
            code=b"demo firmware",
            chipmaker=maker,
            snapshot_rate_per_day=size.snapshot_rate,
        ).to_json()
        folders: dict[str, dict[str, Path]] = {}
        for lab, tag in LABS:
            chips, chip_keys = {}, {}
            for i in range(size.chips_per_prover):
                serial = f"CW-{tag}{i:03d}"
                folder = out / "submissions" / lab / "chips" / serial
                with Chip.provision(folder, serial, maker.verifying_key) as chip:
                    chip.boot(firmware)  # every chip runs signed, logging firmware
                    chip_keys[serial] = chip.public_key
                chips[serial] = folder
            chain.fabricate("fab-1", chip_keys)
            chain.deliver("fab-1", lab, list(chip_keys))
            folders[lab] = chips

        audit = AuditFolder(out / "audit")
        say("verifier: planning the period from the registry's chip counts (Equation 1)")
        plan_audit(
            audit,
            client,
            period=PERIOD,
            verifier=VERIFIER,
            provers=[lab for lab, _ in LABS],
            params=demo_params(size),
            server=server.url,
            rules=rules,
        )
        say("verifier and provers: logging their sampling commitments; the period starts")
        commit(audit, client, actor=VERIFIER, key=SigningKey.load(keys / f"{VERIFIER}.key"))
        for lab, _ in LABS:
            commit(
                audit,
                client,
                actor=lab,
                key=SigningKey.load(keys / f"{lab}.key"),
                nonce_file=keys / f"{lab}.nonce",
            )
        start(audit, client)

        runs = _train(out, folders, firmware, size, say)
        for lab, (run, run_dir) in runs.items():
            _submission(out / "submissions" / lab, lab, folders[lab], run, run_dir)

        say("after the period: the verifier and the provers reveal their nonces")
        reveal(audit, client, actor=VERIFIER, key=SigningKey.load(keys / f"{VERIFIER}.key"))
        for lab, _ in LABS:
            reveal(
                audit,
                client,
                actor=lab,
                key=SigningKey.load(keys / f"{lab}.key"),
                nonce_file=keys / f"{lab}.nonce",
            )
        cluster = SigningKey.generate()
        for lab, _ in LABS:
            say(f"verifier: sampling and inspecting {lab}'s chips")
            sample(audit, client, lab)
            inspect(audit, out / "submissions", lab)
            verify(
                audit, out / "submissions", lab, cluster_key=cluster, strict=strict, progress=say
            )
            check_verdicts(audit, out / "submissions", lab, cluster.verifying_key)
    paths = write_folder_report(audit)
    return DemoResult(
        doc=json.loads(paths.json.read_text()),
        report=paths.json,
        markdown=paths.markdown,
        plot=paths.plot,
        seconds=time.perf_counter() - start_time,
    )
