"""Hashes, signatures, envelopes and the Merkle transparency log.

The bottom layer of computewatch: it imports nothing else of ours.
"""

# --- shard hashing, digests, keys, DSSE envelopes (section A) ---
from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
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
    from computewatch.crypto._logstore import (
        LogStore,
        MemoryLogStore,
        SQLiteLogStore,
        StaleLogError,
    )
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

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "JSON_DOMAIN": "computewatch.crypto._canonical",
            "canonical_json": "computewatch.crypto._canonical",
            "hash_bytes": "computewatch.crypto._canonical",
            "json_digest": "computewatch.crypto._canonical",
            "Digest": "computewatch.crypto._digest",
            "HashAlgorithm": "computewatch.crypto._digest",
            "KeyID": "computewatch.crypto._digest",
            "MAX_ENVELOPE_BYTES": "computewatch.crypto._dsse",
            "Envelope": "computewatch.crypto._dsse",
            "EnvelopeSignature": "computewatch.crypto._dsse",
            "VerifiedPayload": "computewatch.crypto._dsse",
            "sign_envelope": "computewatch.crypto._dsse",
            "verify_envelope": "computewatch.crypto._dsse",
            "Signer": "computewatch.crypto._keys",
            "SigningKey": "computewatch.crypto._keys",
            "VerifyingKey": "computewatch.crypto._keys",
            "SHARD_DOMAIN": "computewatch.crypto._shard",
            "SHARD_DTYPES": "computewatch.crypto._shard",
            "ShardHasher": "computewatch.crypto._shard",
            "concat_shard_hash": "computewatch.crypto._shard",
            "shard_hash": "computewatch.crypto._shard",
            "Checkpoint": "computewatch.crypto._checkpoint",
            "SignedCheckpoint": "computewatch.crypto._checkpoint",
            "verify_checkpoint": "computewatch.crypto._checkpoint",
            "MerkleLog": "computewatch.crypto._log",
            "LogStore": "computewatch.crypto._logstore",
            "MemoryLogStore": "computewatch.crypto._logstore",
            "SQLiteLogStore": "computewatch.crypto._logstore",
            "StaleLogError": "computewatch.crypto._logstore",
            "leaf_hash": "computewatch.crypto._merkle",
            "verify_consistency": "computewatch.crypto._merkle",
            "verify_inclusion": "computewatch.crypto._merkle",
            "Note": "computewatch.crypto._note",
            "NoteSignature": "computewatch.crypto._note",
            "NoteSigner": "computewatch.crypto._note",
            "NoteVerifier": "computewatch.crypto._note",
            "VerifiedNote": "computewatch.crypto._note",
            "sign_note": "computewatch.crypto._note",
            "verify_note": "computewatch.crypto._note",
            "Receipt": "computewatch.crypto._receipt",
            "verify_receipt": "computewatch.crypto._receipt",
            "CosignatureKind": "computewatch.crypto._cosignature",
            "Cosigner": "computewatch.crypto._cosignature",
            "CosignerKey": "computewatch.crypto._cosignature",
            "CheckpointStore": "computewatch.crypto._cpstore",
            "StoredCheckpoint": "computewatch.crypto._cpstore",
            "Policy": "computewatch.crypto._policy",
            "PolicyGroup": "computewatch.crypto._policy",
            "PolicyLog": "computewatch.crypto._policy",
            "PolicyWitness": "computewatch.crypto._policy",
            "QuorumNotMet": "computewatch.crypto._policy",
            "WitnessedCheckpoint": "computewatch.crypto._policy",
            "TilePath": "computewatch.crypto._tiles",
            "decode_entry_bundle": "computewatch.crypto._tiles",
            "encode_entry_bundle": "computewatch.crypto._tiles",
            "read_entry_bundle": "computewatch.crypto._tiles",
            "read_tile": "computewatch.crypto._tiles",
            "split_tile": "computewatch.crypto._tiles",
            "RollbackError": "computewatch.crypto._trust",
            "TrustedCheckpoints": "computewatch.crypto._trust",
            "SIZE_CONTENT_TYPE": "computewatch.crypto._witness",
            "BadConsistency": "computewatch.crypto._witness",
            "SizeConflict": "computewatch.crypto._witness",
            "UnknownLog": "computewatch.crypto._witness",
            "Witness": "computewatch.crypto._witness",
            "WitnessBadRequest": "computewatch.crypto._witness",
            "WitnessError": "computewatch.crypto._witness",
            "WitnessForbidden": "computewatch.crypto._witness",
            "add_checkpoint_body": "computewatch.crypto._witness",
            "parse_add_checkpoint": "computewatch.crypto._witness",
        },
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
