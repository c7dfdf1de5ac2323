"""The process that runs inside the trusted cluster's sandbox (private).

Invoked as ``python -m computewatch.verification._cluster_child JOB_JSON``:
verifies the chip logs against their registered keys, runs
`verify_transcript` and prints the verdict as JSON on stdout. It writes
nothing else; errors go to stderr as one line with a non-zero exit.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from computewatch.chip import read_chip_log
from computewatch.crypto import VerifyingKey
from computewatch.errors import ComputeWatchError
from computewatch.verification._verify import ChipEvidence, VerificationPolicy, verify_transcript


def main(argv: list[str]) -> int:
    """Run one verification job; return the exit status."""
    try:
        job = json.loads(argv[1])
        chips = [
            ChipEvidence.from_log(
                c["serial"], VerifyingKey.load(c["public_key"]), read_chip_log(c["log"])
            )
            for c in job["chips"]
        ]
        rules = None
        if job.get("rules"):
            from computewatch.rules import load_rules  # noqa: PLC0415

            rules = load_rules(job["rules"])
        cap = job.get("max_compute")
        verdict = verify_transcript(
            job["transcript"],
            job["report"],
            chips,
            VerificationPolicy(
                budget=float(job["budget"]),
                exact=bool(job["exact"]),
                max_compute=None if cap is None else float(cap),
            ),
            np.random.default_rng(int(job["seed"])),
            rules=rules,
            declared=dict(job.get("declared") or {}),
        )
    except ComputeWatchError as e:
        sys.stderr.write(e.diagnostics() + "\n")
        return e.exit_code
    except (IndexError, KeyError, TypeError, ValueError) as e:
        sys.stderr.write(f"bad input: cluster job malformed ({e})\n")
        return 2
    sys.stdout.write(json.dumps(verdict.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
