"""Hashes, signatures, envelopes and the Merkle transparency log.

The bottom layer of computewatch: it imports nothing else of ours.
"""

# --- shard hashing, digests, keys, DSSE envelopes (section A) ---
from computewatch.crypto._canonical import JSON_DOMAIN, canonical_json, hash_bytes, json_digest
from computewatch.crypto._digest import Digest, HashAlgorithm, KeyID
from computewatch.crypto._dsse import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    EnvelopeSignature,
    VerifiedPayload,
    sign_envelope,
    verify_envelope,
)
from computewatch.crypto._keys import Signer, SigningKey, VerifyingKey
from computewatch.crypto._shard import (
    SHARD_DOMAIN,
    SHARD_DTYPES,
    ShardHasher,
    concat_shard_hash,
    shard_hash,
)

# --- Merkle log, checkpoints, signed notes, receipts (section B) ---
# isort: split
from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint, verify_checkpoint
from computewatch.crypto._log import MerkleLog
from computewatch.crypto._logstore import LogStore, MemoryLogStore, SQLiteLogStore, StaleLogError
from computewatch.crypto._merkle import leaf_hash, verify_consistency, verify_inclusion
from computewatch.crypto._note import (
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    VerifiedNote,
    sign_note,
    verify_note,
)
from computewatch.crypto._receipt import Receipt, verify_receipt

# --- witnesses, cosignatures, policies, tiles (section C) ---
# isort: split
from computewatch.crypto._cosignature import CosignatureKind, Cosigner, CosignerKey
from computewatch.crypto._cpstore import CheckpointStore, StoredCheckpoint
from computewatch.crypto._policy import (
    Policy,
    PolicyGroup,
    PolicyLog,
    PolicyWitness,
    QuorumNotMet,
    WitnessedCheckpoint,
)
from computewatch.crypto._tiles import (
    TilePath,
    decode_entry_bundle,
    encode_entry_bundle,
    read_entry_bundle,
    read_tile,
    split_tile,
)
from computewatch.crypto._trust import RollbackError, TrustedCheckpoints
from computewatch.crypto._witness import (
    SIZE_CONTENT_TYPE,
    BadConsistency,
    SizeConflict,
    UnknownLog,
    Witness,
    WitnessBadRequest,
    WitnessError,
    WitnessForbidden,
    add_checkpoint_body,
    parse_add_checkpoint,
)

__all__ = [
    "JSON_DOMAIN",
    "MAX_ENVELOPE_BYTES",
    "SHARD_DOMAIN",
    "SHARD_DTYPES",
    "SIZE_CONTENT_TYPE",
    "BadConsistency",
    "Checkpoint",
    "CheckpointStore",
    "CosignatureKind",
    "Cosigner",
    "CosignerKey",
    "Digest",
    "Envelope",
    "EnvelopeSignature",
    "HashAlgorithm",
    "KeyID",
    "LogStore",
    "MemoryLogStore",
    "MerkleLog",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Policy",
    "PolicyGroup",
    "PolicyLog",
    "PolicyWitness",
    "QuorumNotMet",
    "Receipt",
    "RollbackError",
    "SQLiteLogStore",
    "ShardHasher",
    "SignedCheckpoint",
    "Signer",
    "SigningKey",
    "SizeConflict",
    "StaleLogError",
    "StoredCheckpoint",
    "TilePath",
    "TrustedCheckpoints",
    "UnknownLog",
    "VerifiedNote",
    "VerifiedPayload",
    "VerifyingKey",
    "Witness",
    "WitnessBadRequest",
    "WitnessError",
    "WitnessForbidden",
    "WitnessedCheckpoint",
    "add_checkpoint_body",
    "canonical_json",
    "concat_shard_hash",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "hash_bytes",
    "json_digest",
    "leaf_hash",
    "parse_add_checkpoint",
    "read_entry_bundle",
    "read_tile",
    "shard_hash",
    "sign_envelope",
    "sign_note",
    "split_tile",
    "verify_checkpoint",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_note",
    "verify_receipt",
]
