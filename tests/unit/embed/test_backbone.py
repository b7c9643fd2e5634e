import pytest

from simsearch.embed.backbone import BackboneEmbedder
from simsearch.errors import UnknownComponentError


def test_unknown_backbone():
    with pytest.raises(UnknownComponentError, match="unknown backbone") as info:
        BackboneEmbedder("resnet9000", pretrained=False)
    assert info.value.parameter == "backbone"


def test_unknown_precision_and_float16_on_cpu_are_refused():
    from simsearch.errors import InputError

    with pytest.raises(InputError, match="unknown precision 'fp8'") as error:
        BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu", precision="fp8")
    assert error.value.parameter == "precision"
    with pytest.raises(InputError, match="CUDA GPU only"):
        BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu", precision="float16")
