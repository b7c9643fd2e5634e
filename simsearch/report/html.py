"""A run (run.json) -> one self-contained HTML page: inline CSS, charts and thumbnails as data URIs, no
scripts and no network. Every section is optional in the run; the page says so where one is missing."""

from __future__ import annotations

import csv
import datetime as _dt
import html as _html
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from simsearch.decide.threshold import as_threshold
from simsearch.report import charts
from simsearch.report.run import example_groups, read_run, result_arrays
from simsearch.report.thumbnails import data_uri, file_uri, thumbnail_uri

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str, quote: bool = True) -> str:
    """HTML-escaped text, control characters (NUL included: HTML forbids them) shown as U+FFFD."""
    return _html.escape(_CONTROL.sub("\ufffd", text), quote)

SECTIONS = (("data", "1. Data"), ("setup", "2. Set-up"), ("training", "3. Training curves"),
            ("results", "4. Results"), ("examples", "5. Examples"))
GROUP_TITLES = {
    "caught": ("Defects caught", "defect images rejected, highest score first"),
    "missed": ("Defects missed", "defect images passed, lowest score first: the clearest misses"),
    "false_alarms": ("False alarms", "good images rejected, highest score first"),
    "top_defects": ("Highest-scored defect images", "no threshold in this run: calibrate for verdicts"),
    "top_good": ("Highest-scored good images", "no threshold in this run: calibrate for verdicts"),
}
NONE = {"caught": "none: no defect image was rejected", "missed": "none: every defect image was rejected",
        "false_alarms": "none: no good image was rejected", "top_defects": "no defect images in this run",
        "top_good": "no good images in this run"}
MAX_CSV_ROWS = 100_000

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2733;background:#f4f6f8;
font-size:15px;line-height:1.45}
main{max-width:1280px;margin:0 auto;padding:20px 28px 40px}
header{background:#1d2733;color:#fff;padding:22px 28px}header h1{margin:0 0 4px;font-size:26px}
header .meta{color:#c9d3dd;margin:0}
nav{margin-top:10px}nav a{color:#9fd0ff;margin-right:18px;text-decoration:none;font-weight:600}
section{background:#fff;border-radius:8px;padding:16px 22px 20px;margin:18px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{margin:0 0 10px;font-size:22px;border-bottom:2px solid #e3e8ee;padding-bottom:6px}
h3{margin:16px 0 6px;font-size:17px}
.note{color:#5b6b7b;font-style:italic;margin:4px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0 0}
.card{background:#2b3a4a;border-radius:6px;padding:8px 14px;min-width:120px}
.card .v{font-size:24px;font-weight:700;color:#fff}.card .k{font-size:12px;color:#c9d3dd;text-transform:uppercase}
table{border-collapse:collapse;margin:6px 0 10px}
th,td{border:1px solid #dde3ea;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:190px}
code,.path{font-family:Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.charts img{border:1px solid #e3e8ee;border-radius:4px;max-width:100%}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;text-align:center}figure img{border-radius:3px;display:block;margin:0 auto}
figcaption{font-size:12px;color:#5b6b7b;max-width:220px;overflow-wrap:anywhere}
.example{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start;border:1px solid #e3e8ee;border-radius:6px;
padding:10px;margin:8px 0;background:#fafbfc}
.example .facts{min-width:220px;max-width:300px;font-size:13px}
.example .facts .path{display:block;margin-bottom:4px}
.missing{width:160px;height:120px;display:flex;align-items:center;justify-content:center;background:#eef2f6;
color:#5b6b7b;font-size:12px;border-radius:3px;padding:4px;text-align:center}
.reject{color:#c0392b;font-weight:700}.pass{color:#1e7d32;font-weight:700}
footer{color:#5b6b7b;font-size:12px;text-align:center;margin:10px 0 30px}
"""


def _fmt(value: Any, digits: int = 3) -> str:
    """A number or value, shortened for a table cell (already escaped)."""
    if value is None:
        return "&mdash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return escape(f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2e}")
    if isinstance(value, (dict, list)):
        import json
        return f"<code>{escape(json.dumps(value, ensure_ascii=False))}</code>"
    return escape(str(value))


def _pct(value: float | None) -> str:
    return "&mdash;" if value is None else f"{100 * value:.1f}%"


def _img(uri: str | None, alt: str, width: int | None = None, missing: str = "image not found") -> str:
    if uri is None:
        return f'<div class="missing">{escape(missing)}</div>'
    size = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{escape(alt)}"{size}>'


def _chart(render: Callable[..., bytes], alt: str, *args: Any) -> str:
    """A chart as an embedded PNG; a note instead when the numbers cannot make one."""
    try:
        return _img(data_uri(render(*args)), alt)
    except (ValueError, IndexError, KeyError, TypeError) as error:
        return f'<p class="note">{escape(alt)}: not drawn ({escape(str(error))})</p>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A table from already-escaped cells; columns from numeric_from on are right-aligned."""
    head = "".join(f'<th{" class=n" if i >= numeric_from else ""}>{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i >= numeric_from else ""}>{c}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _confusion_rates(confusion: Sequence[Sequence[int]] | None) -> dict[str, float | None]:
    if not confusion:
        return {}
    (tn, fp), (fn, tp) = confusion
    return {"recall": tp / (tp + fn) if tp + fn else None, "false_alarm_rate": fp / (fp + tn) if fp + tn else None,
            "precision": tp / (tp + fp) if tp + fp else None, "accuracy": (tp + tn) / max(tn + fp + fn + tp, 1)}


# -- sections ---------------------------------------------------------------------------------------
def _header(run: dict[str, Any]) -> str:
    metrics = run.get("metrics") or {}
    rates = _confusion_rates(metrics.get("confusion"))
    cards = [("images", _fmt(metrics.get("images"))), ("image AUROC", _fmt(metrics.get("image_auroc")))]
    if rates:
        cards += [("defects caught", _pct(rates["recall"])), ("false alarms", _pct(rates["false_alarm_rate"]))]
    if metrics.get("threshold") is not None:
        cards.append(("threshold", _fmt(metrics["threshold"])))
    if metrics.get("pixel_auroc") is not None:
        cards.append(("pixel AUROC", _fmt(metrics["pixel_auroc"])))
    cards = [c for c in cards if c[1] != "&mdash;"] if metrics else []
    data = run.get("data") or {}
    meta = [f"{escape(str(run.get('kind', 'run')))} run", escape(str(run.get("created", "")))]
    if data.get("dataset"):
        meta.append(f"data <span class=path>{escape(str(data['dataset']))}</span>"
                    + (f" fold {escape(str(data['fold']))}" if data.get("fold") else ""))
    card_html = "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{escape(k)}</div></div>'
                        for k, v in cards)
    links = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS)
    return (f"<header><h1>{escape(str(run.get('title') or 'simsearch run'))}</h1>"
            f"<p class=meta>{' &middot; '.join(meta)}</p>"
            + (f'<div class="cards">{card_html}</div>' if card_html else "") + f"<nav>{links}</nav></header>")


def _data(run: dict[str, Any]) -> str:
    data = run.get("data")
    if not data:
        return '<p class="note">This run names no data set.</p>'
    parts = []
    if data.get("subset"):  # compare --limit: the table is of a subset, and says how large
        parts.append(f'<p class="note">{escape(str(data["subset"]))}</p>')
    splits: dict[str, dict[str, int]] = data.get("splits") or {}
    if splits:
        classes = sorted({c for counts in splits.values() for c in counts}, key=lambda c: (c != "good", c))
        rows = [[escape(c)] + [_fmt(counts.get(c, 0)) for counts in splits.values()] for c in classes]
        rows.append(["<b>all</b>"] + [f"<b>{sum(counts.values())}</b>" for counts in splits.values()])
        parts.append("<h3>Images per class and defect type, per split</h3>"
                     + _table(["class / defect type"] + [escape(s) for s in splits], rows))
    samples: dict[str, list[str]] = data.get("samples") or {}
    for name in sorted(samples, key=lambda c: (c != "good", c)):
        figures = "".join(f"<figure>{_img(thumbnail_uri(p, 160), name, missing='not found: ' + Path(p).name)}"
                          f"<figcaption>{escape(Path(p).parent.name + '/' + Path(p).name)}</figcaption></figure>"
                          for p in samples[name])
        parts.append(f"<h3>Sample images: {escape(name)}</h3><div class=thumbs>{figures}</div>")
    return "".join(parts) or '<p class="note">No counts recorded.</p>'


def _setup(run: dict[str, Any]) -> str:
    setup = run.get("setup")
    if not setup:
        return '<p class="note">This run records no set-up.</p>'
    known = [("index", "index folder"), ("backbone", "backbone"), ("weights", "weights"), ("mode", "mode"),
             ("k", "k (neighbours averaged)"), ("coreset_ratio", "coreset ratio"), ("dim", "vector dimension"),
             ("counts", "index contents"), ("fingerprint", "embedder fingerprint")]
    pairs = [(label, _fmt(setup[key])) for key, label in known if key in setup]
    parts = [_kv(pairs)]
    embedder = setup.get("embedder")
    if embedder:
        parts.append("<h3>Embedder</h3>" + _kv([(str(k), _fmt(v)) for k, v in embedder.items()]))
    threshold = as_threshold(setup.get("threshold"))
    if threshold is not None:
        rows = [("value", _fmt(threshold.value, 4)), ("policy", _fmt(threshold.policy)),
                ("target", _fmt(threshold.target)), ("why", _fmt(threshold.reason or None)),
                ("calibrated on", _fmt(threshold.calibrated_on or None)),
                ("score scale (low, high)", f"{_fmt(threshold.low)}, {_fmt(threshold.high)}"),
                ("map threshold for boxes", _fmt(threshold.pixel_value, 4)),
                ("calibrated", _fmt(threshold.created or None))]
        metrics = {k: v for k, v in threshold.metrics.items() if k != "confusion"}
        if metrics:
            rows.append(("on the calibration set", ", ".join(f"{escape(k)} {_fmt(v)}" for k, v in metrics.items())))
        parts.append("<h3>Threshold</h3>" + _kv(rows))
    elif run.get("kind", "evaluate") == "evaluate":  # compare and train runs keep thresholds per model
        parts.append('<h3>Threshold</h3><p class="note">No threshold: the index was not calibrated, so there '
                     "are no verdicts (run <code>simsearch calibrate</code>).</p>")
    extra = {k: v for k, v in setup.items() if k not in {key for key, _ in known} | {"embedder", "threshold",
                                                                                    "hyperparameters"}}
    hyper = {**(setup.get("hyperparameters") or {}), **extra}
    if hyper:
        parts.append("<h3>Hyperparameters</h3>" + _kv([(str(k), _fmt(v)) for k, v in hyper.items()]))
    return "".join(parts)


def _training_rows(curve: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    rows = curve.get("rows")
    if rows:
        return list(rows)
    if curve.get("csv"):
        path = Path(curve["csv"])
        path = path if path.is_absolute() else folder / path
        with open(path, newline="", encoding="utf-8") as handle:
            return [row for _, row in zip(range(MAX_CSV_ROWS), csv.DictReader(handle))]
    return []


def _training(run: dict[str, Any], folder: Path) -> str:
    training = run.get("training")
    if not training:
        return ('<p class="note">Nothing was trained in this run: the embedder is used as it is '
                "(see the set-up).</p>")
    curves = training if isinstance(training, list) else [training]
    parts = []
    for curve in curves:
        title = escape(str(curve.get("title") or curve.get("model") or "training"))
        try:
            rows = _training_rows(curve, folder)
        except (OSError, csv.Error, UnicodeDecodeError) as error:
            parts.append(f'<h3>{title}</h3><p class="note">curves not readable: {escape(str(error))}</p>')
            continue
        if not rows:
            parts.append(f'<h3>{title}</h3><p class="note">no epochs recorded</p>')
            continue
        x = curve.get("x") or next((c for c in ("epoch", "step", "iteration") if c in rows[0]), list(rows[0])[0])
        last = rows[-1]
        summary = ", ".join(f"{escape(str(k))} {_fmt(_number(v))}" for k, v in last.items() if k != x)
        parts.append(f"<h3>{title}</h3><div class=charts>{_chart(charts.training_png, 'training curves', rows, x)}"
                     f"</div><p class=note>after {escape(str(last.get(x)))} {escape(x)}(s): {summary}</p>")
    return "".join(parts)


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _comparison(run: dict[str, Any]) -> str:
    comparison = run.get("comparison")
    if not comparison:
        return ""
    rows = comparison.get("rows", []) if isinstance(comparison, dict) else comparison
    title = (escape(str(comparison.get("title", "Method comparison"))) if isinstance(comparison, dict)
             else "Method comparison")
    columns: list[str] = []
    for row in rows:
        columns += [c for c in (row.get("metrics") or {}) if c not in columns]
    cells = []
    for row in rows:
        metrics = row.get("metrics") or {}
        line = [escape(str(row.get("method", "?")))]
        for column in columns:
            value = metrics.get(column)
            if isinstance(value, dict):
                line.append(_fmt(value.get("mean")) + (f" &plusmn; {_fmt(value.get('std'))}"
                                                       if value.get("std") is not None else ""))
            else:
                line.append(_fmt(value))
        cells.append(line)
    note = comparison.get("note") if isinstance(comparison, dict) else None
    return (f"<h3>{title}</h3>" + _table(["method"] + [escape(c) for c in columns], cells)
            + (f'<p class="note">{escape(str(note))}</p>' if note else '<p class="note">mean &plusmn; standard '
               "deviation over folds or seeds where given</p>"))


def _curve(run: dict[str, Any]) -> str:
    """The learning curve of a compare run: AUROC and F1 per method against the labelled defects given."""
    curve = run.get("curve")
    if not curve or not curve.get("methods"):
        return ""
    labels = [str(c) for c in curve.get("counts", [])]
    rows = []
    for name, method in curve["methods"].items():
        line = [escape(str(name)), escape(str(method.get("family", "")))]
        for label in labels:
            point = method.get("points", {}).get(label, {})
            cells = []
            for metric in ("image_auroc", "f1"):
                value = (point.get(metric) or {}).get("mean")
                cells.append(_fmt(value, 2) if value is not None else "&mdash;")
            line.append(" / ".join(cells))
        rows.append(line)
    per = escape(str(curve.get("per", "defect type")))
    table = _table(["method", "family"] + [f"{escape(label)} per {per}" for label in labels], rows, numeric_from=2)
    figures = "".join(_chart(charts.curve_png, f"learning curve {metric}", curve, metric)
                      for metric in ("image_auroc", "f1"))
    return (f"<h3>Learning curve: how many defects must be labelled?</h3>{table}"
            f'<p class="note">cells: image AUROC / F1, mean over folds and {escape(str(curve.get("repeats")))} '
            "seeded draw(s); the test parts are the same at every count.</p>"
            f"<div class=charts>{figures}</div>")


def _results(run: dict[str, Any]) -> str:
    results = run.get("results") or []
    metrics = run.get("metrics") or {}
    parts = []
    if metrics:
        rates = _confusion_rates(metrics.get("confusion"))
        pairs = [("images scored", _fmt(metrics.get("images"))),
                 ("good / defect", f"{_fmt(metrics.get('good'))} / {_fmt(metrics.get('defect'))}"),
                 ("image AUROC", _fmt(metrics.get("image_auroc"))), ("threshold", _fmt(metrics.get("threshold"), 4))]
        if rates:
            pairs += [("recall (defects caught)", _pct(rates["recall"])),
                      ("false-alarm rate (good rejected)", _pct(rates["false_alarm_rate"])),
                      ("precision (rejects that are defects)", _pct(rates["precision"])),
                      ("accuracy", _pct(rates["accuracy"]))]
        counts = metrics.get("type_counts")
        if counts:  # the predicted type: over the defects of a type the index holds that were given one
            pairs.append(("defect type named right",
                          (f"{_pct(metrics.get('type_accuracy'))} ({counts['right']}/{counts['predicted']} given a "
                           f"type)" if counts["predicted"] else "&mdash;")
                          + f"; not counted: {counts['no_prediction']} given no type, {counts['type_not_in_index']} "
                          "of types the index holds no exemplar of"
                          + (f" ({escape(', '.join(map(str, metrics.get('unknown_types') or [])))})"
                             if metrics.get("unknown_types") else "")))
        for key, label in (("pixel_auroc", "pixel AUROC (anomaly maps vs masks)"),
                           ("pixel_pro", "pixel PRO (FPR \u2264 30%)")):
            if metrics.get(key) is not None:
                pairs.append((label, _fmt(metrics[key])))
        parts.append(_kv(pairs))
    if results:
        labels, scores = result_arrays(results)
        threshold = metrics.get("threshold")
        figures = []
        if 0 < labels.sum() < len(labels):
            figures += [_chart(charts.roc_png, "ROC curve", labels, scores, threshold),
                        _chart(charts.pr_png, "precision-recall curve", labels, scores, threshold)]
        else:
            figures.append('<p class="note">ROC and precision-recall curves need both good and defect images.</p>')
        figures.append(_chart(charts.histogram_png, "score histogram", labels, scores, threshold))
        if metrics.get("confusion"):
            figures.append(_chart(charts.confusion_png, "confusion matrix", metrics["confusion"]))
        if metrics.get("recall_by_type"):
            counts: dict[str, int] = {}
            for row in results:
                if row.get("label") == "defect":
                    name = row.get("defect_type") or "defect"
                    counts[name] = counts.get(name, 0) + 1
            figures.append(_chart(charts.recall_png, "recall per defect type", metrics["recall_by_type"], counts))
        parts.append(f"<div class=charts>{''.join(figures)}</div>")
    parts.append(_comparison(run))
    parts.append(_curve(run))
    body = "".join(parts)
    return body or '<p class="note">This run has no per-image results or metrics.</p>'


def _overlay_uri(row: dict[str, Any], folder: Path) -> str | None:
    """The example's stored overlay, only from inside the run folder and only if it is a PNG."""
    name = row.get("overlay")
    if not name:
        return None
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents or not path.is_file():
        return None
    uri = file_uri(path)
    return uri if uri and uri.startswith("data:image/png;base64,iVBORw0KGgo") else None


def _neighbour_figure(neighbour: dict[str, Any] | None, title: str) -> str:
    if not neighbour:
        return (f'<figure><div class="missing">no {escape(title)} in the index</div>'
                f'<figcaption>{escape(title)}</figcaption></figure>')
    path = str(neighbour.get("path", ""))
    kind = f" ({neighbour['type']})" if neighbour.get("type") else ""
    return (f"<figure>{_img(thumbnail_uri(path), title, missing='exemplar file not found: ' + Path(path).name)}"
            f"<figcaption>{escape(title + kind)}, distance {float(neighbour.get('distance', 0)):.3f}<br>"
            f"<span class=path>{escape(Path(path).parent.name + '/' + Path(path).name)}</span></figcaption></figure>")


def _example(row: dict[str, Any], folder: Path) -> str:
    path = str(row.get("path", ""))
    overlay = _overlay_uri(row, folder)
    picture = _img(overlay, "heatmap overlay") if overlay else _img(thumbnail_uri(path, 240), "image")
    verdict = row.get("is_anomaly")
    verdict_html = ("&mdash;" if verdict is None else '<span class="reject">REJECT</span>' if verdict
                    else '<span class="pass">pass</span>')
    boxes = row.get("boxes") or []
    facts = [("true class", escape(str(row.get("defect_type") or row.get("label", "?")))), ("verdict", verdict_html),
             ("score", _fmt(row.get("score"), 4)), ("normalised", _fmt(row.get("normalised_score"))),
             ("boxes", str(len(boxes))
              + (" (peak " + ", ".join(f"{b['score']:.2f}" for b in boxes[:3]) + ")" if boxes else ""))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    nearest = (row.get("nearest") or [None])[0]
    return (f'<div class="example"><figure>{picture}<figcaption>{"heatmap overlay" if overlay else "image"}'
            f"</figcaption></figure>"
            f"{_neighbour_figure(nearest, 'nearest good')}"
            f"{_neighbour_figure(row.get('nearest_defect'), 'nearest defect')}"
            f'<div class="facts"><span class="path">{escape(path)}</span><table>{table}</table></div></div>')


def _examples(run: dict[str, Any], folder: Path) -> str:
    results = run.get("results") or []
    if not results:
        return '<p class="note">This run has no per-image results.</p>'
    parts = ['<p class="note">Each example: the image with its anomaly map (blue = like the good exemplars, '
             "red = unlike them; the threshold sits mid-scale), white boxes round the regions over the threshold, "
             "then its nearest good and nearest defect exemplars in the index.</p>"]
    for group, chosen in example_groups(results).items():
        title, note = GROUP_TITLES[group]
        body = "".join(_example(results[i], folder) for i in chosen) or f'<p class="note">{escape(NONE[group])}</p>'
        parts.append(f'<h3>{escape(title)} ({len(chosen)} shown)</h3><p class="note">{escape(note)}</p>{body}')
    return "".join(parts)


def render_html(run: dict[str, Any], folder: str | Path = ".") -> str:
    """The report page of a run; folder is where the run's relative files (overlays, CSVs) live."""
    folder = Path(folder)
    bodies = {"data": _data(run), "setup": _setup(run), "training": _training(run, folder),
              "results": _results(run), "examples": _examples(run, folder)}
    sections = "".join(f'<section id="{key}"><h2>{escape(title)}</h2>{bodies[key]}</section>'
                       for key, title in SECTIONS)
    made = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(str(run.get('title') or 'simsearch run'))}</title><style>{CSS}</style></head>"
            f"<body>{_header(run)}<main>{sections}</main><footer>simsearch report, made {made}</footer></body></html>")


def write_report(run_path: str | Path, out: str | Path | None = None) -> Path:
    """Render a run folder (or run.json) to out (default: report.html next to run.json); returns its path."""
    run, folder = read_run(run_path)
    out = Path(out) if out is not None else folder / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    from simsearch.files import write_bytes_atomic
    write_bytes_atomic(out, render_html(run, folder).encode("utf-8"))
    return out
