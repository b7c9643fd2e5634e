"""Every registered embedder kind passes the same checks: config round trip, stable fingerprint, vector shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simsearch.embed import create_embedder, embedder_from_config
from simsearch.embed.registry import embedder_class, embedder_kinds
from tests.unit.embed.test_contract import CASES

# kind -> cases: (id, function(tmp folder) -> (spec, build options)). A newly registered kind fails
# `test_every_kind_has_a_case` until it gets one here.


PARAMS = [pytest.param(kind, make, id=f"{kind}-{name}") for kind in embedder_kinds()
          for name, make in CASES.get(kind, [])]
IMAGES = [np.random.default_rng(0).integers(0, 256, (48, 56, 3), dtype=np.uint8),
          np.full((70, 40, 3), 128, np.uint8)]


@pytest.mark.parametrize("kind, make", PARAMS)
def test_embedder_contract(kind, make, tmp_path):
    spec, options = make(tmp_path)
    embedder = create_embedder(spec, device="cpu", batch_size=2, **options)
    assert type(embedder) is embedder_class(kind) and type(embedder).kind == kind
    config = json.loads(json.dumps(embedder.config))  # JSON-able, as the index manifest keeps it
    assert config["kind"] == kind

    again = create_embedder(spec, device="cpu", batch_size=2, **options)
    assert again.fingerprint == embedder.fingerprint, "two builds of the same spec must agree"
    rebuilt = embedder_from_config(config, device="cpu")
    assert rebuilt.fingerprint == embedder.fingerprint and rebuilt.dim == embedder.dim

    out = embedder.embed(IMAGES)
    assert out.image.dtype == np.float32 and out.image.shape == (len(IMAGES), embedder.dim)
    assert np.isfinite(out.image).all()
    if embedder.supports_patches:
        assert out.patches is not None and out.patches.dtype == np.float32
        assert out.patches.ndim == 4 and out.patches.shape[0] == len(IMAGES)
        assert out.patches.shape[-1] == embedder.dim
    else:
        assert out.patches is None
    np.testing.assert_allclose(rebuilt.embed(IMAGES).image, out.image, rtol=1e-4, atol=1e-5)

    # an inference module is a promise: the compiled copy (ONNX Runtime) gives the same vectors
    if embedder.inference_module() is not None:
        from simsearch.embed.compiled import CompiledEmbedder, compile_embedder
        found = compile_embedder(embedder)
        assert found is not None, "an embedder with an inference module must compile"
        copy = CompiledEmbedder(*found, config)
        assert copy.fingerprint == embedder.fingerprint and copy.dim == embedder.dim
        compiled = copy.embed(IMAGES)
        for ours, theirs in ((compiled.image, out.image), (compiled.patches, out.patches)):
            assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
