"""One error root: every class has an exit code, hints render per face, and the CLI exits as documented."""

import json
import socket

import pytest
import torch

from simsearch.errors import ConflictError, WeightsError
from tests.cli_runner import FAST, run_cli


@pytest.fixture
def built(part_folder, tmp_path):
    index = tmp_path / "index"
    result = run_cli("build-index", part_folder / "good", "--out", index, "--mode", "image", *FAST)
    assert result.exit_code == 0, result.output
    return index


def test_remove_unknown_repeated_and_last_good(built):
    result = run_cli("remove", built, "999")
    assert result.exit_code == 2 and "no exemplar with id 999" in result.stderr
    result = run_cli("remove", built, "3", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"removed": [3]}
    result = run_cli("remove", built, *range(12))  # every good exemplar left, and 3 is gone already
    assert result.exit_code == 2 and "no exemplar with id 3" in result.stderr
    result = run_cli("remove", built, *[i for i in range(12) if i != 3])
    assert result.exit_code == ConflictError.exit_code and "last good exemplar" in result.stderr
    assert json.loads(run_cli("info", built, "--json").stdout)["counts"]["good"] == 11


def test_info_shows_the_last_save_and_no_coreset_in_image_mode(built):
    described = json.loads(run_cli("info", built, "--json").stdout)
    manifest = json.loads((built / "manifest.json").read_text())
    assert described["updated"] == manifest["updated"] and described["coreset_ratio"] is None
    text = run_cli("info", built).stdout
    assert manifest["updated"] in text
    assert "coreset" not in text and "patches in the bank" not in text


def test_unknown_embedder_missing_weights_and_absent_gpu(part_folder, tmp_path):
    good, out = part_folder / "good", tmp_path / "idx"
    result = run_cli("build-index", good, "--out", out, "--embedder", "nosuch:x", "--device", "cpu")
    assert result.exit_code == 2 and "unknown embedder" in result.stderr
    result = run_cli("build-index", good, "--out", out, "--backbone", "nosuch", *FAST)
    assert result.exit_code == 2 and "--backbone" in result.stderr
    result = run_cli("build-index", good, "--out", out, "--weights", tmp_path / "none.pth", "--device", "cpu")
    assert result.exit_code == WeightsError.exit_code and "--weights" in result.stderr
    if not torch.cuda.is_available():
        result = run_cli("build-index", good, "--out", out, "--no-pretrained", "--device", "cuda")
        assert result.exit_code == 2 and "--device" in result.stderr
    assert "please report" not in result.stderr


def test_port_in_use_exits_2_naming_the_port(built):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        result = run_cli("serve", "--index", built, "--port", port, "--device", "cpu")
    finally:
        taken.close()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "please report" not in lines[0]


def test_build_index_modes_come_from_the_registry(part_folder, tmp_path):
    result = run_cli("build-index", part_folder / "good", "--out", tmp_path / "bad", "--mode", "nearest", *FAST)
    assert result.exit_code == 2 and "contrast, image, open-set, patch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("build-index", part_folder / "good", "--out", tmp_path / "contrast", "--mode", "contrast", *FAST)
    assert result.exit_code == 0, result.output
    assert "patches in the" in result.output and "mode contrast" in result.output
