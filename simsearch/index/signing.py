"""Optional signing of index folders with a key kept outside them.

An index folder is code: whoever can write it decides what its compiled copy runs and what its manifest says
(threshold, embedder, checksums). Where folders live on shared storage, a key that only trusted writers hold
makes that visible: with `SIMSEARCH_SIGNING_KEY_FILE` naming a key file, every save writes an HMAC-SHA256 of the
manifest (which holds every file's sha256, so it covers the whole folder), and every load refuses a folder whose
signature is missing or does not match. Without the variable nothing changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from simsearch.errors import IndexProblem, InputError

SIGNING_KEY_ENV = "SIMSEARCH_SIGNING_KEY_FILE"
SIGNATURE = "signature"  # the manifest key: {"hmac-sha256": hex digest of the rest of the manifest}
MIN_KEY_BYTES = 16


class SignatureError(IndexProblem):
    """An index whose signature is missing or wrong while a signing key is configured."""


def signing_key(folder: str | Path | None = None) -> bytes | None:
    """The key of the file `SIMSEARCH_SIGNING_KEY_FILE` names (None: signing is off). Refuses a key file that
    cannot be read, is shorter than 16 bytes, or lies inside the index folder it would sign."""
    name = os.environ.get(SIGNING_KEY_ENV)
    if not name:
        return None
    path = Path(name)
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise InputError(f"{SIGNING_KEY_ENV} names {path}, which cannot be read ({error.strerror or error})",
                         hint=f"point {SIGNING_KEY_ENV} at a readable key file, or unset it") from None
    if len(key) < MIN_KEY_BYTES:
        raise InputError(f"the signing key in {path} is {len(key)} bytes, shorter than {MIN_KEY_BYTES}",
                         hint="make one with: python -c \"import secrets; print(secrets.token_hex(32))\" > FILE")
    if folder is not None and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)):
        raise InputError(f"the signing key {path} lies inside the index folder {folder}: whoever can change the "
                         "folder could read it", hint="keep the key file outside every index folder")
    return key


def manifest_signature(manifest: dict, key: bytes) -> str:
    """HMAC-SHA256 of the manifest without its signature, as canonical JSON (sorted keys, no spaces)."""
    body = {name: value for name, value in manifest.items() if name != SIGNATURE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def signed(manifest: dict, key: bytes | None) -> dict:
    """The manifest with its signature (as it was, without one, when `key` is None)."""
    manifest = {name: value for name, value in manifest.items() if name != SIGNATURE}
    if key is not None:
        manifest[SIGNATURE] = {"hmac-sha256": manifest_signature(manifest, key)}
    return manifest


def check_signature(path: str | Path, manifest: dict, key: bytes | None) -> None:
    """SignatureError when a key is configured and the manifest's signature is missing or not this key's."""
    if key is None:
        return
    record = manifest.get(SIGNATURE)
    digest = record.get("hmac-sha256") if isinstance(record, dict) else None
    remedy = ("if you trust it, check it with `simsearch verify` and sign it (--sign); else rebuild it with "
              "`simsearch build-index`")
    if not isinstance(digest, str):
        raise SignatureError(f"{path} is not signed, and a signing key is configured ({SIGNING_KEY_ENV}): refused",
                             hint=remedy)
    try:
        expected = manifest_signature(manifest, key)
    except ValueError:  # a number JSON cannot write back (NaN): not a manifest any key signed
        expected = ""
    if not hmac.compare_digest(digest.encode("utf-8", "replace"), expected.encode("ascii")):
        raise SignatureError(f"{path} has a signature that is not this key's: changed by someone without the key, "
                             "or signed with another key; refused", hint=remedy)


__all__ = ["SIGNATURE", "SIGNING_KEY_ENV", "SignatureError", "check_signature", "manifest_signature", "signed",
           "signing_key"]
