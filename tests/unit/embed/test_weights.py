"""Pretrained weights offline: whatever torchvision's download raises, one line naming what to pass instead."""

from __future__ import annotations

import pytest
import torchvision

from simsearch.embed import weights as weights_module
from simsearch.embed.weights import torchvision_state_dict
from simsearch.errors import WeightsError


class HubError(Exception):
    """Not an OSError: what a hub, a proxy or an HTTP client may raise instead of URLError."""


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Every download fails; returns the list of the downloads tried."""
    tried = []

    def unreachable(self, *args, **kwargs):
        tried.append(self.url)
        raise HubError("download.pytorch.org is unreachable")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", unreachable)
    monkeypatch.setattr(weights_module, "_failed_downloads", {})
    return tried


def test_a_failed_download_of_any_kind_is_a_weights_error(offline):
    with pytest.raises(WeightsError) as caught:
        torchvision_state_dict("resnet18")
    text = str(caught.value)
    assert "could not be downloaded (HubError)" in text and "weights FILE" in text and "pretrained=False" in text


def test_a_failed_download_is_not_tried_again_until_the_retry_time_or_a_cached_file(offline, monkeypatch, tmp_path):
    for _ in range(3):  # a compare run asks on every fold: one try, the same error each time
        with pytest.raises(WeightsError, match=r"could not be downloaded \(HubError\)"):
            torchvision_state_dict("mobilenet_v3_small")
    assert len(offline) == 1
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / offline[0].rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")  # a file put in the cache is read at once (here torchvision's loader is the fake)
    with pytest.raises(WeightsError):
        torchvision_state_dict("mobilenet_v3_small")
    assert len(offline) == 2
    cached.unlink()
    monkeypatch.setattr(weights_module, "DOWNLOAD_RETRY_S", 0.0)  # past the retry time: tried again
    with pytest.raises(WeightsError):
        torchvision_state_dict("mobilenet_v3_small")
    assert len(offline) == 3
