"""The compiled embedder (ONNX Runtime) against the torch embedder it was made from."""

import os
import subprocess
import sys

import numpy as np
import pytest

from simsearch.embed.compiled import CompiledEmbedder, DamagedCopyError, compile_embedder
from tests.conftest import ROOT, part_image


@pytest.fixture(scope="module")
def copy(small_embedder):
    found = compile_embedder(small_embedder)
    assert found is not None
    return found


def test_compiled_vectors_are_the_torch_vectors(small_embedder, copy):
    model, record = copy
    assert record["fingerprint"] == small_embedder.fingerprint and record["image_size"] == 64
    compiled = CompiledEmbedder(model, record, small_embedder.config)
    assert compiled.fingerprint == small_embedder.fingerprint and compiled.dim == small_embedder.dim
    rng = np.random.default_rng(3)
    # images of other sizes than the network's, and a prepared one: both paths resize the same way
    images = [part_image(rng, size=90), part_image(rng, size=64, defect=True), compiled.prepare(part_image(rng, 120))]
    ours, torch_ = compiled.embed(images), small_embedder.embed(images)
    scale = np.abs(torch_.patches).max()
    assert ours.patches.shape == torch_.patches.shape and ours.image.shape == torch_.image.shape
    assert np.abs(ours.patches - torch_.patches).max() <= 1e-4 * scale
    assert np.abs(ours.image - torch_.image).max() <= 1e-4 * scale
    empty = compiled.embed([])
    assert empty.image.shape == (0, compiled.dim) and empty.patches.shape == (0, *record["grid"], compiled.dim)


def test_an_embedder_is_compiled_once_a_process(small_embedder, copy):
    assert compile_embedder(small_embedder) is copy


def test_a_damaged_copy_is_refused(small_embedder, copy):
    model, record = copy
    with pytest.raises(DamagedCopyError, match="not an ONNX model|ONNX Runtime cannot open"):
        CompiledEmbedder(model[: len(model) // 2], record, small_embedder.config)
    with pytest.raises(DamagedCopyError, match="does not take the images"):
        CompiledEmbedder(model, {**record, "image_size": 96}, small_embedder.config)
    for bad in ({**record, "dim": 10}, {**record, "grid": [7, 7]}):
        with pytest.raises(DamagedCopyError, match="outputs are not those"):
            CompiledEmbedder(model, bad, small_embedder.config)
    for bad in ({**record, "image_size": "64"}, {**record, "grid": [8]}, {**record, "format": "pickle"}, [1]):
        with pytest.raises(DamagedCopyError, match="record"):
            CompiledEmbedder(model, bad, small_embedder.config)


def test_a_hidden_gpu_is_not_seen_without_importing_torch():
    code = ("import os, sys; os.environ['CUDA_VISIBLE_DEVICES'] = ''\n"
            "from simsearch.runtime import gpu_visible\n"
            "assert gpu_visible() is False and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
