"""On swtpm, the owner's TPM2_ClockSet ages an update; the Verifier's own clock does not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tests.chip.swtpm import require_tpm_stack, swtpm_server

require_tpm_stack()

from computewatch.attacks import ClockSetForward, TpmElements, use_elements  # noqa: E402
from computewatch.inspection import inspect_chip  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

RNG = np.random.default_rng(0)


def test_clock_set_forward_on_a_tpm_hides_from_the_chip_clock_not_from_trusted_time(
    tmp_path: Path,
) -> None:
    attack = ClockSetForward()
    tpms = TpmElements(swtpm_server)
    try:
        with use_elements(tpms):
            data = attack.create(tmp_path, 2, []).data
            assert data["record"].serial == "CW-CS-2"
            blind = inspect_chip(  # judged by the TPM clock alone: nothing to see
                data["folder"],
                data["record"],
                expected_owner="lab-a",
                nonce=bytes(32),
                reports=data["reports"],
            )
            assert blind.findings == ()
            assert blind.attestation is not None
            days = blind.attestation["chip_time"]["clock_ms"] / 86_400_000
            assert days > 9  # the TPM clock was set 9 days ahead, 3 h after the update
            caught = attack.check(attack.create(tmp_path / "again", 2, []))
            assert {"chip-clock-jump", "update-before-inspection"} <= set(caught.checks)
            honest = attack.check(attack.honest(tmp_path, 2))
            assert not honest.detected, honest.detail
    finally:
        tpms.close()
