"""The inspection report: a synthetic run rendered to one self-contained HTML page, and its sections."""

import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_BAD_INPUT
from simsearch.data.datasets import discover_samples
from simsearch.evaluate.evaluation import evaluate_dataset
from simsearch.inspector import Inspector, calibrate_index
from simsearch.report import new_run, read_run, render_html, write_report, write_run
from simsearch.report.html import SECTIONS
from simsearch.report.writers import report_evaluation
from tests.conftest import write_parts

runner = CliRunner()
FAST = ["--no-pretrained", "--image-size", "64", "--device", "cpu"]


class Page(HTMLParser):
    """Headings, image sources and link targets of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.headings, self.images, self.links, self._in = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h2", "h3"):
            self._in = tag
            self.headings.append("")
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("href", "src", "action"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.headings[-1] += data


def _no_external_references(text: str) -> None:
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//|file:)", text, re.I)
    assert "<script" not in text.lower() and "@import" not in text and "url(" not in text


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


def test_report_of_a_run_with_comparison_and_training(tmp_path):
    (tmp_path / "curves.csv").write_text("epoch,loss,accuracy\n1,0.9,0.5\n2,0.6,0.7\n3,0.4,0.8\n")
    run = new_run("compare", title="methods on <parts>",
                  comparison={"rows": [{"method": "patchcore-resnet18",
                                        "metrics": {"image_auroc": {"mean": 0.97, "std": 0.01}, "seconds": 12.5}},
                                       {"method": "triplet-head",
                                        "metrics": {"image_auroc": {"mean": 0.91, "std": 0.03}}}]},
                  training=[{"title": "triplet-ae", "rows": [{"epoch": e, "loss": 1 / e, "val_accuracy": 0.5 + e / 10}
                                                             for e in range(1, 6)]},
                            {"title": "triplet-head", "csv": "curves.csv"}])
    write_run(run, tmp_path)
    text = write_report(tmp_path, tmp_path / "out" / "page.html").read_text(encoding="utf-8")
    page = Page(text)
    assert {"Method comparison", "triplet-ae", "triplet-head"} <= set(page.headings)
    assert "patchcore-resnet18" in text and "0.970 &plusmn; 0.010" in text and "12.500" in text
    assert sum(src.startswith("data:image/png;base64,") for src in page.images) == 2  # one chart per curve
    assert "methods on &lt;parts&gt;" in text and "<parts>" not in text
    assert "no per-image results" in text
    _no_external_references(text)


def test_text_from_files_is_escaped_and_overlays_stay_inside_the_run(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    run = new_run("evaluate", title="<script>alert(1)</script>",
                  results=[{"path": "<img src=x onerror=alert(1)>.png", "label": "defect", "defect_type": "<b>",
                            "score": 1.0, "is_anomaly": True, "nearest": [], "overlay": "../secret.png"},
                           {"path": "good.png", "label": "good", "score": 0.1, "is_anomaly": False, "nearest": []}],
                  metrics={"image_auroc": 1.0, "threshold": 0.5, "confusion": [[1, 0], [0, 1]],
                           "recall_by_type": {"<b>": 1.0}})
    (tmp_path / "run").mkdir()
    text = render_html(run, tmp_path / "run")
    assert "<script>" not in text and "<img src=x" not in text and "<b>" not in text.replace("<b>all</b>", "")
    assert "&lt;script&gt;" in text
    assert "iVBORw0KGgogbm90" not in text  # the file outside the run folder is not embedded


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


def test_untyped_defects_are_one_row_wherever_they_are_counted(tmp_path):
    from pathlib import Path

    from simsearch.data.datasets import Sample
    from simsearch.report.run import UNTYPED, data_section

    evaluated = [Sample(Path("g.png"), "good"), Sample(Path("d.png"), "defect"), Sample(Path("c.png"), "defect",
                                                                                      "crack")]
    section = data_section(tmp_path, evaluated, index_counts={"good": 5, "(untyped)": 2, "crack": 1})
    rows = {name for counts in section["splits"].values() for name in counts}
    assert rows == {"good", "crack", UNTYPED}
    assert section["splits"]["index exemplars"][UNTYPED] == 2 and section["splits"]["evaluated"][UNTYPED] == 1
    assert set(section["samples"]) == {"good", "crack", UNTYPED}


def test_training_curves_have_whole_epoch_ticks(monkeypatch):
    from simsearch.report import charts

    drawn = []
    monkeypatch.setattr(charts, "_png", lambda figure: drawn.append(figure) or b"")
    charts.training_png([{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4},
                         {"epoch": 3, "train_loss": 0.3}])
    ticks = drawn[0].axes[0].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)
