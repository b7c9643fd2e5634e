"""The inspection report: a synthetic run rendered to one self-contained HTML page, and its sections."""

import json

import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_BAD_INPUT
from simsearch.data.datasets import discover_samples
from simsearch.evaluate.evaluation import evaluate_dataset
from simsearch.inspector import Inspector, calibrate_index
from simsearch.report import read_run
from simsearch.report.html import SECTIONS
from simsearch.report.writers import report_evaluation
from tests.cli_runner import FAST
from tests.conftest import write_parts
from tests.unit.report.test_report import Page, _no_external_references

runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic_run(small_embedder, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    parts, fresh = write_parts(root / "parts", seed=1), write_parts(root / "fresh", seed=2, n_good=8)
    inspector = Inspector(small_embedder, mode="patch", coreset_ratio=0.5).fit(parts / "good")
    calibrate_index(inspector, discover_samples(fresh))
    test = write_parts(root / "test", seed=3, n_good=6, n_defect=3)
    evaluation = evaluate_dataset(inspector, discover_samples(test))
    report = report_evaluation(evaluation, inspector, test, run_dir=root / "run")
    return report, evaluation


def test_report_of_an_evaluation_has_every_section_and_embedded_images(synthetic_run):
    report, evaluation = synthetic_run
    text = report.read_text(encoding="utf-8")
    page = Page(text)
    for _, title in SECTIONS:
        assert title in page.headings
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in page.images)
    charts = sum(src.startswith("data:image/png;base64,") for src in page.images)
    # ROC, PR, histogram, confusion, recall per type, plus one overlay per example
    examples = sum(1 for h in page.headings if h.startswith(("Defects caught", "Defects missed", "False alarms")))
    assert examples == 3
    assert charts >= 5 + 1
    assert sum(src.startswith("data:image/jpeg;base64,") for src in page.images) >= 2 * 2  # class samples
    assert all(link.startswith("#") for link in page.links)
    _no_external_references(text)
    run, folder = read_run(report.parent)
    assert run["kind"] == "evaluate" and len(run["results"]) == len(evaluation.results) == 9
    assert run["data"]["splits"]["evaluated"] == {"good": 6, "spot": 3}
    assert run["setup"]["threshold"]["value"] == evaluation.threshold
    assert run["metrics"]["confusion"] == evaluation.confusion
    overlays = [r["overlay"] for r in run["results"] if "overlay" in r]
    assert overlays and all((folder / name).is_file() for name in overlays)
    assert "pixel" not in json.dumps(run["results"][0]) or "patch_map" not in run["results"][0]


def test_evaluate_report_and_report_commands(part_folder, fresh_parts, tmp_path):
    index, run_dir = tmp_path / "index", tmp_path / "run"
    assert runner.invoke(app, ["build-index", str(part_folder / "good"), "--out", str(index), *FAST]).exit_code == 0
    assert runner.invoke(app, ["calibrate", str(fresh_parts), "--index", str(index)]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(part_folder), "--index", str(index), "--fold", "1/2", "--report",
                                 "--run-dir", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] == str(run_dir / "report.html")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["data"]["fold"] == "1/2" and run["data"]["splits"]["whole set"] == {"good": 12, "spot": 4}
    assert (run_dir / "report.html").stat().st_size > 10_000

    out = tmp_path / "again.html"
    result = runner.invoke(app, ["report", str(run_dir / "run.json"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] == str(out)
    assert Page(out.read_text()).headings[:1] == [SECTIONS[0][1]]

    missing = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == EXIT_BAD_INPUT and "no run folder or run.json" in missing.output
    assert "Traceback" not in missing.output


def test_a_training_run_writes_run_json_that_the_report_renders(part_folder, tmp_path):
    run = tmp_path / "head"
    result = runner.invoke(app, [str(a) for a in ("train", "triplet-head", part_folder, "--out", run,
                                                  "--no-pretrained", "--image-size", "64", "--epochs", "3",
                                                  "--batch-size", "8", "--views", "1", "--device", "cpu")])
    assert result.exit_code == 0, result.output
    recorded, _ = read_run(run)
    assert recorded["kind"] == "triplet-head" and len(recorded["training"][0]["rows"]) == 3
    assert "train_loss" in recorded["training"][0]["rows"][0]
    splits = recorded["data"]["splits"]  # the parts it trained and validated on (issue 28)
    assert set(splits) == {"training images", "validation images"}
    assert {c: splits["training images"].get(c, 0) + splits["validation images"].get(c, 0)
            for c in ("good", "spot")} == {"good": 12, "spot": 4} and splits["validation images"]
    hyper = recorded["setup"]["hyperparameters"]
    assert (hyper["epochs"], hyper["epochs run"], hyper["learning rate (Adam)"]) == (3, 3, 1e-3)
    assert (hyper["triplet margin"], hyper["triplet miner"], hyper["model: embedding_dim"]) == (0.2, "batch-hard", 128)
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    text = (run / "report.html").read_text()
    assert "triplet margin" in text and "validation images" in text
    page = Page(text)
    assert any(h.startswith("triplet-head") for h in page.headings) and len(page.images) == 1  # the loss curves
