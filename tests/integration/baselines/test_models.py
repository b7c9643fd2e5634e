"""The baselines' networks: output shapes, CAM feature grid, ImageNet weights mapped onto the CAM backbone."""

import pytest
import torch

from simsearch.baselines.classifier import load_backbone_weights
from simsearch.baselines.models import CamClassifier, SmallCNN
from simsearch.embed.weights import WeightsError
from tests.conftest import RESNET18_WEIGHTS, need_shared


@pytest.mark.parametrize("size", [64, 128])
def test_small_cnn_gives_two_logits(size):
    model = SmallCNN(size).eval()
    assert model(torch.rand(3, 3, size, size)).shape == (3, 2)
    assert [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)] == [16, 32, 64]


def test_cam_classifier_shapes_and_cam_identity():
    from simsearch.baselines.cam import class_activation_maps
    model = CamClassifier("resnet18").eval()
    pixels = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        logits = model(pixels)
        maps = model.feature_maps(pixels)
        cam = class_activation_maps(model, pixels)
    assert logits.shape == (2, 2) and maps.shape == (2, 256, 8, 8) and cam.shape == (2, 8, 8)
    # With GAP + one linear layer, the defect logit is the CAM's mean plus the bias (Zhou et al. 2016).
    assert torch.allclose(cam.mean(dim=(1, 2)) + model.head.bias[1], logits[:, 1], atol=1e-4)


def test_only_the_last_block_and_head_are_trained(tmp_path):
    from simsearch.baselines.classifier import ImageClassifier
    classifier = ImageClassifier("cam", 64, pretrained=False)
    model = classifier._build()
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"trained", "head"}


@need_shared(RESNET18_WEIGHTS)
def test_imagenet_weights_fill_the_cam_backbone():
    model = CamClassifier("resnet18")
    source = load_backbone_weights(model, RESNET18_WEIGHTS)
    state = torch.load(RESNET18_WEIGHTS, weights_only=True)
    assert source.startswith("file:")
    assert torch.equal(model.trained[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert torch.equal(model.frozen[0].weight, state["conv1.weight"])


def test_weights_file_that_does_not_fit_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="lacks"):
        load_backbone_weights(CamClassifier("resnet18"), bad)
