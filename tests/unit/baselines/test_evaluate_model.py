"""`simsearch evaluate --model`: a saved baseline measured on a labelled set, with its report."""

from typer.testing import CliRunner

from simsearch.cli.main import app

runner = CliRunner()
FAST = ["--no-pretrained", "--image-size", "64", "--epochs", "1", "--device", "cpu"]


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_baseline_refuses_an_unregistered_method(part_folder, tmp_path):
    result = _run("train-baseline", part_folder, "--method", "nope", "--out", tmp_path / "m", *FAST)
    assert result.exit_code != 0 and "cnn, cam, probe" in result.stderr
