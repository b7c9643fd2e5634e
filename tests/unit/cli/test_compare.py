"""`simsearch compare` end to end on a tiny synthetic set, `train-baseline`, and `score --model` output."""

import pytest

from tests.cli_runner import run_cli

FAST = ["--no-pretrained", "--image-size", "64", "--cnn-image-size", "64", "--epochs", "1", "--device", "cpu",
        "--probe-backbones", "resnet18"]


@pytest.fixture
def parts(part_folder):
    """part_folder with more defects, so that two folds each get some."""
    import numpy as np
    from PIL import Image

    from tests.conftest import part_image
    rng = np.random.default_rng(5)
    for i in range(4, 8):
        Image.fromarray(part_image(rng, defect=True)).save(part_folder / "defect" / "spot" / f"{i:02d}.png")
    return part_folder


def test_compare_method_errors_are_one_line(parts, tmp_path):
    for methods in ("knn-patch,nope", ""):
        result = run_cli("compare", parts, "--methods", methods, "--out", tmp_path / "x", *FAST)
        assert result.exit_code != 0 and result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1 and "--methods" in result.stderr
    assert "triplet-head" in run_cli("compare", parts, "--methods", "knn-patch,nope", *FAST).stderr
    listed = run_cli("compare", parts, "--list")
    assert listed.exit_code == 0 and "triplet-ae" in listed.stdout and "classifier" in listed.stdout


def test_score_model_errors_are_one_line(tmp_path, part_folder):
    result = run_cli("score", part_folder / "good" / "00.png", "--model", tmp_path)
    assert result.exit_code != 0 and result.stderr.startswith("error: ") and "baseline" in result.stderr
    result = run_cli("compare", part_folder, "--methods", "nope", *FAST)
    assert result.exit_code != 0 and result.stderr.startswith("error: ")
