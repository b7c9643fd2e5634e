"""Checking an index folder against the weights its user trusts, and signing it once checked.

An index folder is code: its compiled copy (`embed/compiled.py`) is the network that scores. `verify_index`
rebuilds the torch embedder from the index's config and a trusted weights file, embeds a few images with it and
with the compiled copy, and compares: the fingerprint and weights digest the manifest records, the copy's vectors,
and the vectors the index holds for those exemplars. `sign_index` then writes the folder's signature with the
configured key (`signing`), so that later loads refuse any change made without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.errors import ConflictError, InputError
from simsearch.files import file_sha256, write_bytes_atomic
from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.index.kinds import EXACT
from simsearch.index.lock import DEFAULT_WAIT, IndexLock
from simsearch.index.persist import load_index
from simsearch.index.signing import SIGNING_KEY_ENV, SignatureError, check_signature, signed, signing_key
from simsearch.index.storage import MANIFEST, read_manifest

VERIFY_IMAGES = 4  # images embedded by both networks: the index's exemplars where their files are there
SYNTHETIC_SEED = 0
# the exemplars' stored vectors may have been embedded on a GPU (TF32 convolutions) or in other batches: a looser
# bound than the copy's (compiled.TOLERANCE), still far below what another network or other weights give
STORED_TOLERANCE = 1e-2


@dataclass
class Check:
    """One comparison: its name, whether it holds, and what was compared (or what differs)."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    """What `verify_index` compared; `ok` when everything it could compare agrees."""

    folder: str
    images: list[str]  # what both networks embedded: exemplar files, or synthetic:SEED:N
    checks: list[Check] = field(default_factory=list)
    signed: bool = False  # True when this verification wrote the folder's signature

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def differences(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.folder, "verified": self.ok, "images": self.images, "signed": self.signed,
                "checks": [asdict(check) for check in self.checks]}


def verify_index(folder: str | Path, weights: str | Path | None = None, images: int = VERIFY_IMAGES,
                 sign: bool = False, wait: float = DEFAULT_WAIT) -> Verification:
    """Compare the index in `folder` with the embedder its config and the trusted `weights` file make (None:
    the weights the config names without a file: torchvision's or seeded random ones), on the CPU. With `sign`,
    a folder that verifies is signed with the configured key (InputError where none is)."""
    from simsearch.embed import embedder_from_config

    folder = Path(folder)
    key = signing_key(folder)
    if sign and key is None:
        raise InputError("no signing key is configured, so nothing can be signed",
                         hint=f"set {SIGNING_KEY_ENV} to a key file kept outside the index folder")
    index = load_index(folder, verify_signature=False)  # its files against its checksums; the signature below
    embedder = embedder_from_config(index.embedder_config, weights=weights, device="cpu")
    pixels, names, ids = _verification_images(index, max(2, int(images)), embedder.config.get("image_size", 224))
    result = Verification(str(folder), names)
    result.checks.append(Check("fingerprint", embedder.fingerprint == index.fingerprint,
                               f"the trusted weights give {embedder.fingerprint}, the manifest records "
                               f"{index.fingerprint}"))
    expected = embedder.embed(pixels)
    result.checks.extend(_compiled_checks(index, embedder, pixels, expected))
    result.checks.extend(_stored_checks(index, expected.image, ids))
    if key is not None and not sign:
        try:
            check_signature(folder / MANIFEST, read_manifest(folder, verify_signature=False), key)
            result.checks.append(Check("signature", True, "signed with the configured key"))
        except SignatureError as error:  # what differs is reported, not raised
            result.checks.append(Check("signature", False, error.message))
    if sign and result.ok:
        sign_index(folder, index.generation, key, wait)
        result.signed = True
    return result


def _verification_images(index: ExemplarIndex, count: int, size: int) -> tuple[list[np.ndarray], list[str],
                                                                                list[int | None]]:
    """Up to `count` exemplar images whose files are still those the index holds (same sha256), spread over the
    ids; topped up with seeded synthetic images (noise on gradients) where files are missing."""
    from simsearch.data.images import ImageError, read_image

    pixels: list[np.ndarray] = []
    names: list[str] = []
    ids: list[int | None] = []
    exemplars = sorted(index.exemplars.values(), key=lambda e: e.id)
    step = max(1, len(exemplars) // count)
    for exemplar in exemplars[::step] + exemplars:
        if len(pixels) == count:
            break
        if exemplar.id in ids or not os.path.isfile(exemplar.path):
            continue
        try:
            if file_sha256(exemplar.path) != exemplar.sha256:
                continue
            pixels.append(read_image(exemplar.path))
        except (ImageError, OSError):
            continue
        names.append(exemplar.path)
        ids.append(exemplar.id)
    rng = np.random.default_rng(SYNTHETIC_SEED)
    ramp = np.linspace(0, 160, size, dtype=np.float32)
    while len(pixels) < count:
        noise = rng.normal(0, 40, (size, size, 3)).astype(np.float32)
        pixels.append((ramp[None, :, None] + ramp[::-1, None, None] / 2 + noise).clip(0, 255).astype(np.uint8))
        names.append(f"synthetic:{SYNTHETIC_SEED}:{len(names)}")
        ids.append(None)
    return pixels, names, ids


def _difference(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(largest difference, largest magnitude of `expected`)."""
    if got.shape != expected.shape:
        return float("inf"), 0.0
    return float(np.abs(got - expected).max(initial=0.0)), float(np.abs(expected).max(initial=0.0))


def _compiled_checks(index: ExemplarIndex, embedder: Any, pixels: list[np.ndarray], expected: Any) -> list[Check]:
    """The compiled copy's record and vectors against the trusted torch embedder's."""
    from simsearch.embed.compiled import ARTIFACT, TOLERANCE, CompiledEmbedder, stored_copy
    from simsearch.errors import IndexProblem

    copy = stored_copy(index.artifacts, index.artifact_records, index.fingerprint)
    if copy is None:
        detail = ("the index keeps a compiled copy of another embedder's fingerprint: it is never run"
                  if ARTIFACT in index.artifacts else "the index keeps no compiled copy: torch runs it")
        return [Check("compiled copy", True, detail)]
    model, record = copy
    checks = [Check("compiled weights digest", record.get("weights_digest") == embedder.weights_digest,
                    f"the copy's record says {record.get('weights_digest')}, the trusted weights give "
                    f"{embedder.weights_digest}")]
    try:
        compiled = CompiledEmbedder(model, record, index.embedder_config)
    except IndexProblem as error:  # external data, another domain's operators, damage: what differs
        return [*checks, Check("compiled copy", False, f"it cannot be run: {error.message}")]
    got = compiled.embed(pixels)
    image, image_scale = _difference(got.image, expected.image)
    patches, patch_scale = _difference(got.patches, expected.patches)
    scale = max(image_scale, patch_scale, 1e-6)
    checks.append(Check("compiled vectors", max(image, patches) <= TOLERANCE * scale,
                        f"largest difference from torch's vectors {max(image, patches):.3g} (image {image:.3g}, "
                        f"patches {patches:.3g}; largest value {scale:.3g}, allowed {TOLERANCE * scale:.3g}) "
                        f"on {len(pixels)} images"))
    return checks


def _stored_checks(index: ExemplarIndex, vectors: np.ndarray, ids: list[int | None]) -> list[Check]:
    """The image vectors the index holds for the exemplars embedded, against the trusted network's."""
    rows = [(row, exemplar_id) for row, exemplar_id in enumerate(ids) if exemplar_id is not None]
    if not rows:
        return [Check("stored vectors", True, "no exemplar file is there to compare with (synthetic images only)")]
    worst, scale, compared = 0.0, 1e-6, 0
    for label in ("good", "defect"):
        store = index.vectors[label]
        if store.kind != EXACT:  # a compressed kind holds approximations
            continue
        stored, stored_ids = store.contents()
        position = {int(i): n for n, i in enumerate(stored_ids)}
        for row, exemplar_id in rows:
            if exemplar_id in position:
                difference, magnitude = _difference(stored[position[exemplar_id]], vectors[row])
                worst, scale, compared = max(worst, difference), max(scale, magnitude), compared + 1
    if not compared:
        return [Check("stored vectors", True, "the index holds its image vectors approximately (compressed "
                                              "kind): not compared")]
    return [Check("stored vectors", worst <= STORED_TOLERANCE * scale,
                  f"largest difference between the index's vectors of {compared} exemplars and the trusted "
                  f"network's {worst:.3g} (largest value {scale:.3g}, allowed {STORED_TOLERANCE * scale:.3g})")]


def sign_index(folder: str | Path, generation: int, key: bytes, wait: float = DEFAULT_WAIT) -> None:
    """Write the folder's signature with `key`, under its writer lock, if its manifest is still at `generation`
    (the one verified); ConflictError otherwise."""
    folder = Path(folder)
    with IndexLock(folder, wait):
        manifest = read_manifest(folder, verify_signature=False)
        if manifest.get("generation") != generation:
            raise ConflictError(f"{folder} was changed by another writer while it was verified; nothing was signed",
                                hint="verify it again")
        load_index(folder, verify_signature=False)  # its files still what the manifest records
        write_bytes_atomic(folder / MANIFEST, _manifest_bytes(signed(manifest, key)))


def _manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")


__all__ = ["Check", "Verification", "sign_index", "verify_index"]
