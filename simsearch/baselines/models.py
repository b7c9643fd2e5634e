"""The supervised baselines' networks, as pure torch modules: seed 000's small CNN and seeds 001/002's CAM
classifier."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from simsearch.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from simsearch.embed.backbone import RESNET_STEM
from simsearch.errors import UnknownComponentError

# The last convolutional block of each supported CAM backbone: the one fine-tuned, and whose maps make the CAM.
# ResNet uses layer3 (not layer4) so that the partial ImageNet file (conv1..layer3) is enough; VGG16 uses its
# last three convolutions (features[24:]), as seed 002 fine-tunes conv5_1..conv5_3.
CAM_BACKBONES = ("vgg16", "resnet18", "resnet34", "resnet50", "wide_resnet50_2")
VGG16_LAST_BLOCK = 24


class SmallCNN(nn.Module):
    """Seed 000: three conv blocks (16/32/64, ReLU, max-pool), dropout 0.2, dense 128, two logits.

    Input: (N, 3, H, W) pixels in [0, 1] (the seed's Rescaling(1/255) happens in the data loader).
    """

    def __init__(self, image_size: int = 128, num_classes: int = 2, dropout: float = 0.2):
        super().__init__()
        blocks = []
        channels = 3
        for width in (16, 32, 64):
            blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*blocks)
        side = image_size // 8
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Flatten(), nn.Linear(64 * side * side, 128),
                                  nn.ReLU(inplace=True), nn.Linear(128, num_classes))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))


class CamClassifier(nn.Module):
    """Seeds 001/002: a pretrained backbone's conv trunk + global average pooling + one linear layer.

    Input: (N, 3, H, W) pixels in [0, 1]; ImageNet normalisation happens inside. `feature_maps` gives the last
    block's maps (N, C, h, w), from which `simsearch.baselines.cam` builds class activation maps.
    """

    def __init__(self, backbone: str = "resnet18", num_classes: int = 2):
        super().__init__()
        if backbone not in CAM_BACKBONES:
            raise UnknownComponentError(f"CAM backbone must be one of {', '.join(CAM_BACKBONES)}, not {backbone!r}")
        self.backbone = backbone
        trunk = torchvision.models.get_model(backbone, weights=None)
        if backbone == "vgg16":
            # Drop the last max-pool so the CAM keeps a 14x14 grid at 224 px, as in seed 002.
            self.frozen = nn.Sequential(*list(trunk.features)[:VGG16_LAST_BLOCK])
            self.trained = nn.Sequential(*list(trunk.features)[VGG16_LAST_BLOCK:-1])
        else:
            self.frozen = nn.Sequential(*[getattr(trunk, n) for n in RESNET_STEM], trunk.layer1, trunk.layer2)
            self.trained = trunk.layer3
        with torch.no_grad():
            channels = self.trained(self.frozen(torch.zeros(1, 3, 64, 64))).shape[1]
        self.head = nn.Linear(channels, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def backbone_state_keys(self) -> dict[str, str]:
        """This module's backbone tensor names -> the torchvision model's names (for loading ImageNet weights)."""
        trunk_names = (["features." + str(i) for i in range(VGG16_LAST_BLOCK)] if self.backbone == "vgg16"
                       else list(RESNET_STEM) + ["layer1", "layer2"])
        mapping = {}
        for own, module in (("frozen", self.frozen), ("trained", self.trained)):
            for key in module.state_dict():
                position, _, rest = key.partition(".")
                if own == "frozen":
                    source = trunk_names[int(position)]
                else:
                    source = (f"features.{VGG16_LAST_BLOCK + int(position)}" if self.backbone == "vgg16"
                              else f"layer3.{position}")
                mapping[f"{own}.{key}"] = f"{source}.{rest}" if rest else source
        return mapping

    def feature_maps(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trained(self.frozen((pixels - self.mean) / self.std))

    def frozen_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The frozen part's output, which training without augmentation computes once."""
        return self.frozen((pixels - self.mean) / self.std)

    def classify_frozen(self, frozen: torch.Tensor) -> torch.Tensor:
        """Logits from the frozen part's output."""
        return self.head(self.trained(frozen).mean(dim=(2, 3)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classify_frozen(self.frozen_features(pixels))
