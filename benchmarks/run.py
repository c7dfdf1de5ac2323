"""Run computewatch's benchmarks and write their results as JSON.

Each `benchmarks/bench_<name>.py` defines `run(quick: bool) -> dict` that
measures what it measures *as ratios against a baseline run in the same
process* (these machines are noisy; absolute seconds are recorded but never
asserted). Results go to `benchmarks/results/<name>.json` and, together, to
`benchmarks/results/all.json`.

Usage::

    python benchmarks/run.py            # all benchmarks, full size
    python benchmarks/run.py --quick    # small sizes (CI smoke run)
    python benchmarks/run.py simulator  # one benchmark by name
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks may reuse test helpers (tests.chip.swtpm starts a TPM simulator)
sys.path.insert(0, str(HERE.parent))


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        msg = f"cannot load benchmark {path}"
        raise RuntimeError(msg)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write their JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output folder")
    args = parser.parse_args(argv)
    found = {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}
    names = args.names or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(found)}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    combined: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": _machine(),
        "results": {},
    }
    for name in names:
        print(f"running benchmark {name}{' (quick)' if args.quick else ''} ...", flush=True)
        result = _load(found[name]).run(quick=args.quick)
        doc = {"benchmark": name, "quick": args.quick, "machine": combined["machine"], **result}
        (args.out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
        combined["results"][name] = result
        print(json.dumps(result, indent=2))
    if not args.names:
        (args.out / "all.json").write_text(json.dumps(combined, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
