"""`simsearch train` end to end on a tiny synthetic folder: train, build-index with the checkpoint, score."""

import json

from simsearch.cli.output import EXIT_BAD_INPUT
from simsearch.embed import create_embedder
from tests.cli_runner import run_cli

TINY_AE = ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--embedding-dim", "8", "--grayscale",
           "--device", "cpu"]


def test_train_ae_then_build_index_and_score(part_folder, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "triplet-ae", part_folder, "--out", run, "--miner", "semi-hard", "--json", *TINY_AE)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and summary["images"] == {"good": 12, "spot": 4}
    assert {"train_loss", "val_loss"} <= set(summary["final"])
    assert (run / "model.pt").is_file() and (run / "loss_curves.png").is_file() and (run / "history.csv").is_file()

    index = tmp_path / "index"
    built = run_cli("build-index", part_folder / "good", "--mode", "image", "--embedder",
                    f"triplet-ae:{run / 'model.pt'}", "--out", index, "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["embedder"]["kind"] == "triplet-ae"
    scored = run_cli("score", part_folder / "defect", "--index", index, "--json")
    assert scored.exit_code == 0, scored.output
    assert len(scored.stdout.splitlines()) == 4

    patch = run_cli("build-index", part_folder / "good", "--embedder", f"triplet-ae:{run / 'model.pt'}", "--out",
                    tmp_path / "index2")
    assert patch.exit_code == EXIT_BAD_INPUT and "mode" in patch.stderr

    again = run_cli("train", "triplet-ae", part_folder, "--out", run, *TINY_AE)
    assert again.exit_code == EXIT_BAD_INPUT and "--resume" in again.stderr
    resumed = run_cli("train", "triplet-ae", part_folder, "--out", run, "--resume", "--json",
                      *TINY_AE[:0], "--epochs", "2", *TINY_AE[2:])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs_run"] == 1
    stale = run_cli("score", part_folder / "defect", "--index", index)
    assert stale.exit_code != 0 and "another embedder" in stale.stderr  # retrained model, old index


def test_train_head_then_patch_index(part_folder, tmp_path):
    run = tmp_path / "head"
    result = run_cli("train", "triplet-head", part_folder, "--out", run, "--no-pretrained", "--image-size", "64",
                     "--epochs", "2", "--batch-size", "8", "--views", "1", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    index = tmp_path / "index"
    built = run_cli("build-index", part_folder / "good", "--embedder", f"triplet-head:{run / 'model.pt'}",
                    "--out", index)
    assert built.exit_code == 0, built.output
    evaluated = run_cli("evaluate", part_folder, "--index", index, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["defect"] == 4


def test_bad_training_inputs_give_one_line_errors(part_folder, tmp_path):
    only_good = run_cli("train", "triplet-ae", part_folder / "good", "--out", tmp_path / "r", *TINY_AE)
    assert only_good.exit_code == EXIT_BAD_INPUT and only_good.stderr.startswith("error: ")
    missing = run_cli("train", "triplet-ae", tmp_path / "nope", *TINY_AE)
    assert missing.exit_code == EXIT_BAD_INPUT and len(missing.stderr.strip().splitlines()) == 1
    miner = run_cli("train", "triplet-ae", part_folder, "--miner", "hardest", "--out", tmp_path / "r", *TINY_AE)
    assert miner.exit_code == EXIT_BAD_INPUT and "batch-hard" in miner.stderr
    roi = run_cli("train", "triplet-ae", part_folder, "--roi", "box", "--out", tmp_path / "r", *TINY_AE)
    assert roi.exit_code == EXIT_BAD_INPUT and "hough" in roi.stderr


def test_patch_level_head_trains_and_indexes_with_its_defect_patches(part_folder, tmp_path):
    run = tmp_path / "head"
    result = run_cli("train", "triplet-head", part_folder, "--level", "patch", "--out", run, "--no-pretrained",
                     "--image-size", "64", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    index = tmp_path / "index"
    built = run_cli("build-index", part_folder / "good", "--defects", part_folder / "defect", "--embedder",
                    f"triplet-head:{run / 'model.pt'}", "--mode", "patch", "--out", index, "--json")
    assert built.exit_code == 0, built.output
    # 4 defects x 5% of the head's 8x8 patch grid (64 px), rounded: the patches least like good
    assert json.loads(built.stdout.splitlines()[-1])["defect_patches"] == 4 * 3
    info = json.loads(run_cli("info", index, "--json").stdout)
    assert info["embedder"]["joined"] is True  # the default: the backbone's patch vectors beside the head's
    head_only = run_cli("train", "triplet-head", part_folder, "--level", "patch", "--head-only", "--out",
                        tmp_path / "head-only", "--no-pretrained", "--image-size", "64", "--epochs", "1",
                        "--batch-size", "8", "--device", "cpu", "--json")
    assert head_only.exit_code == 0, head_only.output
    assert "joined" not in create_embedder(f"triplet-head:{tmp_path / 'head-only' / 'model.pt'}").config


def test_next_commands_print_whole_on_a_narrow_terminal(part_folder, tmp_path):
    """A "next:" command is copied and pasted: never wrapped mid-argument, whatever the width (80 here)."""
    run = tmp_path / "a-rather-long-folder-name-for-the-training-run" / "of-the-second-shift-on-line-three"
    result = run_cli("train", "triplet-ae", part_folder, "--out", run, *TINY_AE)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"next: simsearch build-index GOOD --mode image --embedder triplet-ae:{run / 'model.pt'}" in lines
    assert f"report: simsearch report {run}" in lines
