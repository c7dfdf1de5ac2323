"""`computewatch demo`: an end-to-end audit on the embedded defaults.

The story (paper §2-§6): a fab makes emulated chips and the registry (its
log in SQLite) records their custody to two Provers. Each Prover boots its
chips with chipmaker-signed firmware and trains on four of its six chips:

* Prover A (``lab-a``) trains a compliant model on the stdlib corpus,
  below every compute threshold, and reports its true transcript.
* Prover B (``lab-b``) runs a rule-breaking run, over the compute
  thresholds and on banned data (templated exploit code), then hides that
  transcript and reports a spoofed one: a benign run with the same name and
  compute, into which it grafts its chips' real snapshot claims.

The Verifier draws each Prover's sample by commit-reveal, inspects the
sampled chips, and has the trusted cluster (sandboxed) verify the runs
they name and evaluate the rules file. The report shows A compliant and B
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
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.attacks._harness import recommit
from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import RunSpec, TranscriptPaths, train, train_distributed
from computewatch.demo._registry import DemoRegistry
from computewatch.errors import FormatError, ParameterError
from computewatch.inspection import (
    AuditPlan,
    ProverAudit,
    ProverSubmission,
    audit_prover,
    write_report,
)

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
        sample_size: chips the Verifier inspects per lab.
        steps_a: lab A's (compliant) run length.
        batch_a: lab A's batch size.
        steps_b: lab B's runs (hidden and spoofed) length.
        batch_b: lab B's batch size (``steps_b * batch_b`` is its compute).
        snapshot_rate: the firmware's snapshots per chip-day.
    """

    name: str
    chips_per_prover: int
    run_chips: int
    sample_size: int
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
    "full": DemoScale("full", 6, 4, 3, 60, 32, 240, 32, DEMO_RATE),
    "tiny": DemoScale("tiny", 3, 2, 2, 16, 32, 24, 320, 86_400.0),
}


@dataclass(frozen=True)
class DemoResult:
    """What the demo found.

    Attributes:
        audits: one per Prover.
        report: the report's JSON path.
        markdown: the readable report.
        plot: the detection-probability plot.
        seconds: wall time.
    """

    audits: tuple[ProverAudit, ...]
    report: Path
    markdown: Path
    plot: Path
    seconds: float

    @property
    def compliant(self) -> dict[str, bool]:
        """Prover -> compliant."""
        return {a.prover: a.compliant for a in self.audits}

    def to_json(self) -> dict[str, Any]:
        """The demo's JSON output."""
        provers = {}
        for a in self.audits:
            failing = sorted({c.name for v in a.verdicts.values() for c in v.failures})
            rules = sorted({r["id"] for v in a.verdicts.values() for r in v.violations})
            provers[a.prover] = {
                "compliant": a.compliant,
                "sampled_chips": list(a.draw.chips),
                "findings": [f.to_json() for f in a.findings],
                "failing_checks": failing,
                "violated_rules": rules,
                "runs_verified": sorted(a.verdicts),
            }
        return {
            "compliant": self.compliant,
            "provers": provers,
            "report": str(self.report),
            "markdown": str(self.markdown),
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
    real_manifest = json.loads(rp.manifest.read_text())
    manifest = json.loads(sp.manifest.read_text())
    manifest["sharding"] = real_manifest["sharding"]
    sp.manifest.write_text(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
    for f in sp.chips.glob("*.json"):
        f.unlink()
    for f in rp.chips.glob("*.json"):
        shutil.copy(f, sp.chips / f.name)
    for f in rp.snapshots.glob("*.safetensors"):
        shutil.copy(f, sp.snapshots / f.name)
    recommit(spoof)  # make the doctored folder self-consistent again
    report = json.loads(sp.report.read_text())
    report["world_size"] = real_manifest["sharding"]["world_size"]
    sp.report.write_text(json.dumps(report))


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
    """Run the whole story into `out` (replacing what an earlier demo left there)."""
    size = scale if isinstance(scale, DemoScale) else DemoScale.named(scale)
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    _fresh_output_folder(out)
    say("supply chain: registering actors, fabricating chips, delivering them to lab-a and lab-b")
    registry = DemoRegistry(out / "registry.sqlite")
    registry.register_actor("fab-1", "fab")
    for lab in ("lab-a", "lab-b"):
        registry.register_actor(lab, "owner")
    maker = SigningKey.generate()
    firmware = sign_firmware(
        name="computewatch-fw",
        version=1,
        code=b"demo firmware",
        chipmaker=maker,
        snapshot_rate_per_day=size.snapshot_rate,
    ).to_json()
    folders: dict[str, dict[str, Path]] = {}
    for lab, tag in (("lab-a", "A"), ("lab-b", "B")):
        chips = {}
        keys = {}
        for i in range(size.chips_per_prover):
            serial = f"CW-{tag}{i:03d}"
            folder = out / lab / "chips" / serial
            with Chip.provision(folder, serial, maker.verifying_key) as chip:
                chip.boot(firmware)  # every chip runs signed, logging firmware
                keys[serial] = chip.public_key
            chips[serial] = folder
        registry.fabricate("fab-1", keys)
        registry.deliver("fab-1", lab, list(keys))
        folders[lab] = chips

    n = size.run_chips
    say(f"lab-a: training a compliant model on {n} chips (transcript recorded)")
    run_a = out / "lab-a" / "runs" / "assistant-v1"
    spec_a = _spec("assistant-v1", size.steps_a, "stdlib", n, size.batch_a)
    train_distributed(spec_a, run_a, list(folders["lab-a"].values())[:n], firmware)

    say(f"lab-b: training over the compute threshold on banned data ({n} chips)")
    real_b = out / "lab-b" / "hidden" / "codegen-x"
    spec_b = _spec("codegen-x", size.steps_b, "exploit", n, size.batch_b)
    train_distributed(spec_b, real_b, list(folders["lab-b"].values())[:n], firmware)
    say("lab-b: fabricating a benign transcript and grafting its chips' snapshots into it")
    spoof_b = out / "lab-b" / "runs" / "codegen-x"
    train(_spec("codegen-x", size.steps_b, "stdlib", 1, size.batch_b), spoof_b)
    _graft(spoof_b, real_b)

    cluster_key = SigningKey.generate()
    period = "demo-period-1"
    audits = []
    for lab, run, run_dir in (("lab-a", "assistant-v1", run_a), ("lab-b", "codegen-x", spoof_b)):
        say(f"verifier: auditing {lab}")
        submission = ProverSubmission(
            name=lab,
            reports={run: (TranscriptPaths(run_dir).report, run_dir)},
            chips=folders[lab],
            nonce=secrets.token_bytes(32),
            declared={run: {"reported": False, "approvals": []}},
        )
        audits.append(
            audit_prover(
                submission,
                registry,
                sample_size=size.sample_size,
                period=period,
                cluster_key=cluster_key,
                workdir=out / "verifier" / lab,
                rules=rules,
                strict=strict,
                progress=say,
            )
        )
    plan = AuditPlan(
        period=period,
        sample_size=size.sample_size,
        run_fraction=size.run_chips / size.chips_per_prover,
        snapshot_probability=0.95,
        target=0.9,
        basis=f"budget of {size.sample_size} chips of {size.chips_per_prover} per Prover",
    )
    paths = write_report(audits, plan, out / "report")
    return DemoResult(
        audits=tuple(audits),
        report=paths.json,
        markdown=paths.markdown,
        plot=paths.plot,
        seconds=time.perf_counter() - start,
    )
