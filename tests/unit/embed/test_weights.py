"""Pretrained weights offline: whatever torchvision's download raises, one line naming what to pass instead."""

from __future__ import annotations

import pytest
import torchvision

from simsearch.embed.weights import torchvision_state_dict
from simsearch.errors import WeightsError


class HubError(Exception):
    """Not an OSError: what a hub, a proxy or an HTTP client may raise instead of URLError."""


@pytest.fixture
def offline(monkeypatch, tmp_path):
    def unreachable(self, *args, **kwargs):
        raise HubError("download.pytorch.org is unreachable")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", unreachable)


def test_a_failed_download_of_any_kind_is_a_weights_error(offline):
    with pytest.raises(WeightsError) as caught:
        torchvision_state_dict("resnet18")
    text = str(caught.value)
    assert "could not be downloaded (HubError)" in text and "weights FILE" in text and "pretrained=False" in text
