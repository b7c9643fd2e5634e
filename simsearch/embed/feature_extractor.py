"""PatchCore-style patch features from any torchvision model, taken at named graph nodes.

torchvision's `create_feature_extractor` cuts the model after the chosen nodes, so only the modules
those nodes need are kept (and run, and loaded, and hashed).
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.fx import GraphModule
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from simsearch.errors import InputError, UnknownComponentError

# Model-name prefix -> default nodes: the ends of the stride-8 and stride-16 stages, as PatchCore's
# layer2+layer3 of a ResNet. "vit" is resolved from the model's depth (see `default_layers`).
FAMILY_LAYERS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("resnet", "wide_resnet", "resnext"), ("layer2", "layer3")),
    (("efficientnet_",), ("features.3", "features.5")),
    (("convnext_",), ("features.3", "features.5")),
    (("vit_",), ()),
)


def default_layers(model_name: str, model: nn.Module | None = None) -> tuple[str, ...]:
    """The family's default node names for `model_name`; UnknownComponentError for other families."""
    for prefixes, layers in FAMILY_LAYERS:
        if model_name.startswith(prefixes):
            if layers:
                return layers
            return _vit_layers(model if model is not None else torchvision.models.get_model(model_name))
    raise UnknownComponentError(f"simsearch has no default feature layers for {model_name!r}",
                                hint="name its node names in {param} (torchvision's get_graph_node_names "
                                     "lists them)", parameter="layers")


def _natural(name: str) -> list:
    """Sort key that puts encoder_layer_2 before encoder_layer_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _vit_layers(model: nn.Module) -> tuple[str, ...]:
    """Two middle encoder blocks of a vision transformer: at half and three quarters of its depth."""
    depth = len(model.encoder.layers)
    return tuple(f"encoder.layers.encoder_layer_{i}" for i in (depth // 2 - 1, 3 * depth // 4 - 1))


def _inference_graph(model: nn.Module, layers: Sequence[str]) -> GraphModule:
    """The model's eval-mode graph up to `layers`, without shape asserts and whatever only they used.

    An assert on a block's input (as in torchvision's ViT encoder blocks) would otherwise keep the blocks after
    the last chosen node alive: run, and needed in weights files, for nothing.
    """
    traced = create_feature_extractor(model, return_nodes=list(layers))  # train and eval graphs; keep eval's
    body = GraphModule(traced, traced.eval_graph, class_name=type(model).__name__ + "Features")
    for node in list(body.graph.nodes):
        if node.op == "call_function" and node.target is torch._assert:
            body.graph.erase_node(node)
    body.graph.eliminate_dead_code()
    body.delete_all_unused_submodules()
    body.recompile()
    return body.eval()


class FeatureExtractor(nn.Module):
    """Named nodes of a torchvision model -> (N, D, h, w) locally aggregated patch features.

    Each chosen node's map is averaged over a 3x3 neighbourhood (PatchCore's local aggregation), resized
    bilinearly to the first node's grid and concatenated along channels. Token outputs (N, L, C) of vision
    transformers lose their class token and are laid out on the patch grid first.
    """

    def __init__(self, model: str | nn.Module, layers: Sequence[str] | None = None, model_name: str | None = None):
        super().__init__()
        if isinstance(model, str):
            model_name = model
            model = torchvision.models.get_model(model, weights=None)
        name = model_name or type(model).__name__.lower()
        self.layers = tuple(layers) if layers else default_layers(name, model)
        try:
            body = _inference_graph(model, self.layers)
        except ValueError:  # a node that is not in the graph
            raise self._unknown_node(model, name) from None
        self.tokens = isinstance(model, torchvision.models.VisionTransformer)
        self.native_size = getattr(model, "image_size", None)
        self.body = body
        self.local = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)

    def _unknown_node(self, model: nn.Module, name: str) -> UnknownComponentError:
        nodes = set(get_graph_node_names(model)[1])
        # A module name (layer2) stands for its last node (layer2.1.relu_1), so prefixes count too.
        wrong = [layer for layer in self.layers if layer not in nodes and not any(n.startswith(layer + ".")
                                                                                for n in nodes)]
        depth = wrong[0].count(".") + 1 if wrong else 2  # show names as deep as the wrong one
        some = sorted({".".join(n.split(".")[:depth]) for n in nodes if n.count(".") + 1 >= depth}, key=_natural)[:16]
        return UnknownComponentError(f"{name} has no node {', '.join(map(repr, wrong))} (some it has: "
                                     f"{', '.join(some)})", hint="pick node names for {param} from "
                                     "torchvision's get_graph_node_names", parameter="layers")

    def check_size(self, image_size: int | tuple[int, int]) -> None:
        """Vision transformers only take the (square) input size their position embedding was made for."""
        if self.tokens and image_size != self.native_size:
            raise InputError(f"this vision transformer takes {self.native_size} px square images, not {image_size}",
                             hint=f"set {{param}} to {self.native_size} (and keep no aspect ratio)",
                             parameter="image_size")

    def _grid(self, out: torch.Tensor) -> torch.Tensor:
        """A node output as a (N, C, h, w) map."""
        if out.dim() == 4:
            return out
        if out.dim() == 3 and self.tokens:
            side = math.isqrt(out.shape[1] - 1)
            patches = out[:, 1:]  # drop the class token
            return patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], side, side)
        raise InputError(f"node output of shape {tuple(out.shape)} is not a feature map",
                         hint="pick convolutional stages or encoder blocks for {param}", parameter="layers")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        outputs = self.body(pixels)
        maps = [self.local(self._grid(outputs[layer])) for layer in self.layers]
        grid = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
                for m in maps]
        return torch.cat(maps, dim=1)
