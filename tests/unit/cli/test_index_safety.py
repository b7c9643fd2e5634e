"""The CLI on shared and damaged index folders (issue 13 items 1, 10-17; issue 12 items 4, 13, 15): concurrent
writers lose nothing, replacing and duplicating need asking, damage is exit 3 or 4, never "(please report this)"."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli_runner import run_cli


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "please report" not in result.output and "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize("hidden_dim", [10**12, 1e12, "512"])
def test_a_checkpoint_with_absurd_settings_is_refused_before_building(part_folder, tmp_path, hidden_dim):
    from simsearch.embed.checkpoint import write_checkpoint

    checkpoint = tmp_path / "head.pt"
    write_checkpoint(checkpoint, "triplet-head", {"backbone": {}, "in_dim": 384, "embedding_dim": 128,
                                                  "hidden_dim": hidden_dim, "roi": None}, {})
    output = _one_line_error(run_cli("build-index", part_folder / "good", "--out", tmp_path / "i",
                                     "--embedder", f"triplet-head:{checkpoint}", "--device", "cpu"), 4)
    assert "hidden_dim" in output and str(checkpoint) in output


def test_a_malformed_baseline_is_exit_3(part_folder, tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    torch.save({"w": torch.zeros(1)}, folder / "model.pt")
    for config in ([1, 2], {"format_version": 1, "kind": "cnn"},
                   {"format_version": 1, "kind": "cnn", "image_size": 10**9}):
        (folder / "baseline.json").write_text(json.dumps(config))
        output = _one_line_error(run_cli("score", part_folder / "good" / "00.png", "--model", folder), 3)
        assert "baseline.json" in output
