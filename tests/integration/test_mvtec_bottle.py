"""The real thing: MVTec AD bottle with the shared ImageNet ResNet-18 weights (skipped when ../shared is absent)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app
from tests.conftest import BOTTLE, RESNET18_WEIGHTS, need_shared

pytestmark = [pytest.mark.integration, need_shared(BOTTLE, RESNET18_WEIGHTS)]
runner = CliRunner()


@pytest.fixture(scope="module")
def bottle_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("bottle") / "index"
    result = runner.invoke(app, ["build-index", str(BOTTLE / "train" / "good"), "--weights", str(RESNET18_WEIGHTS),
                                 "--out", str(index)])
    assert result.exit_code == 0, result.output
    return index


def test_patch_mode_image_auroc_from_score_json(bottle_index):
    from sklearn.metrics import roc_auc_score
    result = runner.invoke(app, ["score", str(BOTTLE / "test"), "--index", str(bottle_index), "--json"])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 83
    labels = [0 if "/good/" in row["path"] else 1 for row in rows]
    auroc = roc_auc_score(labels, [row["score"] for row in rows])
    assert auroc >= 0.98, auroc


def test_calibrate_on_one_half_evaluate_on_the_other(bottle_index, tmp_path):
    result = runner.invoke(app, ["calibrate", str(BOTTLE), "--fold", "1/2", "--index", str(bottle_index), "--json"])
    assert result.exit_code == 0, result.stderr
    threshold = json.loads(result.stdout)
    assert threshold["policy"] == "f1" and threshold["pixel_value"] is not None
    result = runner.invoke(app, ["evaluate", str(BOTTLE), "--fold", "2/2", "--index", str(bottle_index), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pixel_auroc"] >= 0.97, report
    assert report["image_auroc"] >= 0.98
    (tn, fp), (fn, tp) = report["confusion"]
    assert tp / (tp + fn) >= 0.9 and tn / (tn + fp) >= 0.8


def test_boxes_of_broken_bottles_overlap_their_masks(bottle_index):
    from simsearch.data.images import read_mask
    from simsearch.inspector import Inspector

    inspector = Inspector.load(bottle_index)
    if not inspector.index_.threshold:
        pytest.skip("needs the calibrated index of the previous test")
    images = sorted((BOTTLE / "test" / "broken_large").glob("*.png"))[:8]
    hits = 0
    for result in inspector.score(images):
        mask = read_mask(BOTTLE / "ground_truth" / "broken_large" / f"{result.path.rsplit('/', 1)[1][:3]}_mask.png",
                         result.image_size)
        covered = np.zeros_like(mask)
        for box in result.boxes:
            covered[box.y0:box.y1, box.x0:box.x1] = True
        hits += bool((covered & mask).sum() > 0.3 * mask.sum())
    assert hits >= 7, hits


def test_the_compiled_embedder_scores_as_torch_does(bottle_index):
    """The index's compiled embedder (ONNX Runtime) against torch on every bottle test image: the same scores to
    float rounding and the same image AUROC and pixel maps."""
    from simsearch.embed.compiled import CompiledEmbedder
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.inspector import Inspector

    images = sorted((BOTTLE / "test").rglob("*.png"))
    labels = [0 if p.parent.name == "good" else 1 for p in images]
    compiled = Inspector.load(bottle_index, weights=RESNET18_WEIGHTS, device="cpu")  # the recorded weights again
    plain = Inspector.load(bottle_index, compiled=False, device="cpu")
    assert isinstance(compiled.embedder, CompiledEmbedder) and not isinstance(plain.embedder, CompiledEmbedder)
    ours, theirs = compiled.score(images[::4]), plain.score(images[::4])
    assert max(abs(a.score - b.score) for a, b in zip(ours, theirs)) <= 1e-4 * max(b.score for b in theirs)
    assert max(float(np.abs(a.anomaly_map - b.anomaly_map).max()) for a, b in zip(ours, theirs)) <= 1e-3
    scores = compiled.score_samples(images)
    assert round(image_auroc(labels, scores), 3) == round(image_auroc(labels, plain.score_samples(images)), 3)
