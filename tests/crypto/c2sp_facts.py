"""Facts restated from the C2SP specifications, for the witness, policy and tiles tests.

Provenance: the texts of c2sp.org/tlog-witness, tlog-cosignature, tlog-policy
and tlog-tiles (C2SP, BSD-1-Clause), as copied into the project's shared
vectors folder. Tests use these literals only; they never read that folder.
"""

from __future__ import annotations

DASH = "\u2014"

# tlog-cosignature.md, "Ed25519 signed message": the message for the example checkpoint.
SOFA_ORIGIN = "example.com/behind-the-sofa"
SOFA_SIZE = 20852163
SOFA_ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
SOFA_TIMESTAMP = 1679315147
SOFA_COSIGNED_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# tlog-cosignature.md, the opening example: the witness's cosignature line.
SOFA_COSIGNATURE_LINE = (
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)
# tlog-cosignature.md: key ID type bytes and signature sizes.
ED25519_TYPE = 0x04
MLDSA44_TYPE = 0x06
ED25519_SIGNATURE_BYTES = 64
MLDSA44_SIGNATURE_BYTES = 2420
MLDSA44_PUBLIC_KEY_BYTES = 1312
SUBTREE_LABEL = b"subtree/v1\n\x00"

# tlog-witness.md, "add-checkpoint": the example request body's head (old size and proof).
WITNESS_REQUEST_HEAD = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
)
# tlog-witness.md: the status codes of add-checkpoint.
STATUS_UNKNOWN_ORIGIN = 404
STATUS_BAD_SIGNATURE = 403
STATUS_OLD_LARGER = 400
STATUS_SIZE_MISMATCH = 409
STATUS_BAD_PROOF = 422
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63

# tlog-tiles.md: index 1234067 is encoded as x001/x234/067; a tree of 70,000 leaves has
# 273 full level-0 tiles, a partial level-0 tile of width 112, one full level-1 tile,
# a partial level-1 tile of width 17 and a partial level-2 tile of width 1.
TILE_INDEX = 1234067
TILE_INDEX_PATH = "x001/x234/067"
TREE_70000 = {"full0": 273, "partial0": 112, "full1": 1, "partial1": 17, "partial2": 1}

# tlog-policy.md, "Example policy" (keys elided there; the tests substitute real vkeys).
POLICY_EXAMPLE = """\
log {log}

witness X1 {x1}
witness X2 {x2}
witness X3 {x3}
group X-witnesses 2 X1 X2 X3

witness Y1 {y1}
witness Y2 {y2}
witness Y3 {y3}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""
