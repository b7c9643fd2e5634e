"""The embedder and the patch bank on a GPU, on real images: CPU's vectors in float32, close in float16 and
bfloat16, the same image AUROC on bottle (skipped without a CUDA GPU or ../shared)."""

import numpy as np
import pytest

from tests.conftest import BOTTLE, RESNET18_WEIGHTS, need_shared

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.integration, need_shared(BOTTLE, RESNET18_WEIGHTS),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: checked on a machine with one")]


def _images(count=16):
    from simsearch.data.images import read_image

    return [read_image(p) for p in sorted((BOTTLE / "test").rglob("*.png"))[:count]]


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_the_embedder_on_cuda_gives_the_cpus_vectors(precision):
    from simsearch.embed.backbone import BackboneEmbedder

    images = _images()
    cpu = BackboneEmbedder("resnet18", weights=RESNET18_WEIGHTS, device="cpu").embed(images)
    gpu = BackboneEmbedder("resnet18", weights=RESNET18_WEIGHTS, device="cuda", precision=precision).embed(images)
    assert gpu.patches.shape == cpu.patches.shape and gpu.patches.dtype == np.float32
    a, b = cpu.patches.reshape(-1, cpu.patches.shape[-1]), gpu.patches.reshape(-1, gpu.patches.shape[-1])
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    # float32 on cuda may run its convolutions in TF32 (torch's default for cuDNN): close, not equal
    assert cosine.min() >= (0.999 if precision == "float32" else 0.99), cosine.min()


def test_scoring_on_the_gpu_keeps_the_cpus_scores_and_auroc():
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.inspector import Inspector

    bank = sorted((BOTTLE / "train" / "good").glob("*.png"))[:40]
    test = sorted((BOTTLE / "test").rglob("*.png"))
    labels = [0 if p.parent.name == "good" else 1 for p in test]
    scores = {}
    for device in ("cpu", "cuda"):
        inspector = Inspector(BackboneEmbedder("resnet18", weights=RESNET18_WEIGHTS, device=device)).fit(bank)
        scores[device] = np.array([r.score for r in inspector.score(test)])
    relative = np.abs(scores["cuda"] - scores["cpu"]) / scores["cpu"]
    assert np.median(relative) < 0.01, relative  # the coreset may pick a few other patches from TF32 features
    assert round(image_auroc(labels, scores["cuda"]), 3) == round(image_auroc(labels, scores["cpu"]), 3)
