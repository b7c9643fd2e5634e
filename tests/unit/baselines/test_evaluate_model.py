"""`simsearch evaluate --model`: a saved baseline measured on a labelled set, with its report."""


from tests.cli_runner import run_cli

FAST = ["--no-pretrained", "--image-size", "64", "--epochs", "1", "--device", "cpu"]


def test_train_baseline_refuses_an_unregistered_method(part_folder, tmp_path):
    result = run_cli("train-baseline", part_folder, "--method", "nope", "--out", tmp_path / "m", *FAST)
    assert result.exit_code != 0 and "cnn, cam, probe" in result.stderr
