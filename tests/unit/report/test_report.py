"""The inspection report: a synthetic run rendered to one self-contained HTML page, and its sections."""

import re
from html.parser import HTMLParser

from simsearch.report import new_run, render_html, write_report, write_run


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
