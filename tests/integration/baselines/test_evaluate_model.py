"""`simsearch evaluate --model`: a saved baseline measured on a labelled set, with its report."""

import json

from tests.cli_runner import run_cli
from tests.unit.baselines.test_evaluate_model import FAST


def test_evaluate_a_saved_baseline_with_its_report(part_folder, fresh_parts, tmp_path):
    model = tmp_path / "cam"
    trained = run_cli("train-baseline", part_folder, "--method", "cam", "--out", model, *FAST)
    assert trained.exit_code == 0, trained.output
    run_dir = tmp_path / "run"
    result = run_cli("evaluate", fresh_parts, "--model", model, "--json", "--report", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    saved = json.loads((model / "baseline.json").read_text())["threshold"]  # placed on its validation part
    assert metrics["images"] == 12 and metrics["defect"] == 4 and metrics["threshold"] == saved
    assert sum(map(sum, metrics["confusion"])) == 12 and 0.0 <= metrics["image_auroc"] <= 1.0
    assert (run_dir / "report.html").is_file()
    setup = json.loads((run_dir / "run.json").read_text())["setup"]
    assert setup["scorer"] == "cam" and setup["family"] == "classifier" and setup["model"] == str(model)
