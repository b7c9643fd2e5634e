"""Pretrained weights offline: whatever torchvision's download raises, one line naming what to pass instead."""

from __future__ import annotations

import pytest
import torchvision
from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_WEIGHTS
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


def test_the_cli_names_weights_file_and_no_pretrained(offline, part_folder, tmp_path):
    result = CliRunner().invoke(app, ["build-index", str(part_folder / "good"), "--out", str(tmp_path / "index")])
    assert result.exit_code == EXIT_WEIGHTS, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or not any("Traceback" in line for line in lines)
    error = [line for line in lines if line.startswith("error:")]
    assert error and "--weights FILE" in error[0] and "--no-pretrained" in error[0], result.stderr
