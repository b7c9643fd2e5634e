"""Input sizes that keep an image's aspect ratio (issue 26 item 6): the size rule, the embedder, the compiled
copy, build-index and compare."""

import json

import numpy as np
import pytest
from PIL import Image


def test_backbone_embedder_runs_a_rectangle_and_records_it():
    from simsearch.embed.backbone import BackboneEmbedder

    embedder = BackboneEmbedder("resnet18", image_size=(64, 128), pretrained=False, device="cpu")
    out = embedder.embed([np.zeros((50, 200, 3), np.uint8)])
    assert out.patches.shape[1:3] == (8, 16)
    assert embedder.config["image_size"] == [64, 128]
    again = BackboneEmbedder.from_config(json.loads(json.dumps(embedder.config)), device="cpu")
    assert again.image_size == (64, 128) and again.fingerprint == embedder.fingerprint


def test_a_damaged_size_in_a_config_is_refused():
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.errors import InputError

    config = BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu").config
    with pytest.raises(InputError, match="not a size"):
        BackboneEmbedder.from_config({**config, "image_size": [64, 10 ** 9]}, device="cpu")


def test_the_compiled_copy_of_a_rectangle_gives_torchs_vectors():
    pytest.importorskip("onnxruntime")
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.embed.compiled import CompiledEmbedder, compile_embedder

    embedder = BackboneEmbedder("resnet18", image_size=(64, 96), pretrained=False, device="cpu")
    model, record = compile_embedder(embedder)
    assert record["image_size"] == [64, 96] and record["grid"] == [8, 12]
    compiled = CompiledEmbedder(model, record, embedder.config)
    image = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    np.testing.assert_allclose(compiled.embed([image]).patches, embedder.embed([image]).patches, atol=1e-4)


def test_build_index_keeps_the_aspect_and_scores_maps_over_the_whole_picture(tmp_path):
    from typer.testing import CliRunner

    from simsearch.cli.main import app

    rng = np.random.default_rng(0)
    folder = tmp_path / "good"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (60, 180, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    runner = CliRunner()
    built = runner.invoke(app, ["build-index", str(folder), "--out", str(tmp_path / "idx"), "--no-pretrained",
                                "--image-size", "32", "--device", "cpu", "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout.splitlines()[-1])["embedder"]["image_size"] == [32, 96]
    scored = runner.invoke(app, ["score", str(folder / "0.png"), "--index", str(tmp_path / "idx"), "--json"])
    assert scored.exit_code == 0, scored.output
    square = runner.invoke(app, ["build-index", str(folder), "--out", str(tmp_path / "sq"), "--no-pretrained",
                                 "--image-size", "32", "--device", "cpu", "--aspect", "square", "--json"])
    assert json.loads(square.stdout.splitlines()[-1])["embedder"]["image_size"] == 32
    wrong = runner.invoke(app, ["build-index", str(folder), "--out", str(tmp_path / "x"), "--no-pretrained",
                                "--aspect", "stretch"])
    assert wrong.exit_code != 0 and "--aspect must be one of keep, square" in wrong.output
