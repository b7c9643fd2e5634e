"""Run numbers -> charts as PNG bytes (matplotlib, Agg): ROC, precision-recall, score histogram with the
threshold, confusion matrix, recall per defect type, training curves. Axes are labelled with their units."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

WIDTH, HEIGHT, DPI = 5.2, 3.8, 110
GOOD_COLOUR, DEFECT_COLOUR, THRESHOLD_COLOUR = "#2b7bba", "#d7301f", "#222222"


def _figure(width: float = WIDTH, height: float = HEIGHT):
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, safe in threads

    figure = Figure(figsize=(width, height), dpi=DPI)
    return figure, figure.add_subplot(1, 1, 1)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def roc_png(labels: Sequence[int], scores: Sequence[float], threshold: float | None = None) -> bytes:
    """ROC curve (false-alarm rate vs defect recall) with its AUC, and the operating point at the threshold."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels, scores = np.asarray(labels), np.asarray(scores)
    figure, axes = _figure()
    fpr, tpr, _ = roc_curve(labels, scores)
    axes.plot(fpr * 100, tpr * 100, color=DEFECT_COLOUR, lw=2, label=f"AUROC {roc_auc_score(labels, scores):.3f}")
    axes.plot([0, 100], [0, 100], color="#999999", lw=1, ls="--", label="chance")
    if threshold is not None:
        predicted = scores >= threshold
        point = (100 * predicted[labels == 0].mean(), 100 * predicted[labels == 1].mean())
        axes.plot(*point, "o", color=THRESHOLD_COLOUR, ms=8, label=f"at threshold ({point[0]:.1f}%, {point[1]:.1f}%)")
    axes.set(xlabel="false-alarm rate: good parts rejected (%)", ylabel="recall: defects caught (%)",
             title="ROC curve", xlim=(-2, 102), ylim=(-2, 102))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=9)
    return _png(figure)


def pr_png(labels: Sequence[int], scores: Sequence[float], threshold: float | None = None) -> bytes:
    """Precision-recall curve with average precision, the defect share as the chance line, and the threshold."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels, scores = np.asarray(labels), np.asarray(scores)
    figure, axes = _figure()
    precision, recall, _ = precision_recall_curve(labels, scores)
    axes.plot(recall * 100, precision * 100, color=DEFECT_COLOUR, lw=2,
              label=f"average precision {average_precision_score(labels, scores):.3f}")
    axes.axhline(100 * labels.mean(), color="#999999", lw=1, ls="--", label="chance (defect share)")
    if threshold is not None:
        predicted = scores >= threshold
        caught = (predicted & (labels == 1)).sum()
        point = (100 * caught / max(labels.sum(), 1), 100 * caught / max(predicted.sum(), 1))
        axes.plot(*point, "o", color=THRESHOLD_COLOUR, ms=8, label="at threshold")
    axes.set(xlabel="recall: defects caught (%)", ylabel="precision: rejects that are defects (%)",
             title="Precision-recall curve", xlim=(-2, 102), ylim=(-2, 102))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=9)
    return _png(figure)


def histogram_png(labels: Sequence[int], scores: Sequence[float], threshold: float | None = None) -> bytes:
    """Score histogram of good and defect images, with the threshold as a vertical line."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    figure, axes = _figure(WIDTH * 1.25, HEIGHT)
    edges = np.histogram_bin_edges(np.append(scores, [] if threshold is None else [threshold]), bins=30)
    for value, name, colour in ((0, "good", GOOD_COLOUR), (1, "defect", DEFECT_COLOUR)):
        chosen = scores[labels == value]
        if len(chosen):
            axes.hist(chosen, bins=edges, alpha=0.6, color=colour, label=f"{name} ({len(chosen)})",
                      edgecolor="white", linewidth=0.5)
    if threshold is not None:
        axes.axvline(threshold, color=THRESHOLD_COLOUR, lw=2, ls="--", label=f"threshold {threshold:.3f}")
    axes.set(xlabel="anomaly score (kNN distance to good exemplars; higher = more anomalous)",
             ylabel="images (count)", title="Scores of good and defect images")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=9)
    return _png(figure)


def confusion_png(confusion: Sequence[Sequence[int]]) -> bytes:
    """The 2x2 confusion matrix [[TN, FP], [FN, TP]] as a heatmap with counts and row percentages."""
    matrix = np.asarray(confusion, dtype=float)
    figure, axes = _figure(4.4, 3.8)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(2):
        for col in range(2):
            axes.text(col, row, f"{int(matrix[row, col])}\n({100 * shares[row, col]:.0f}%)", ha="center",
                      va="center", fontsize=13, color="white" if shares[row, col] > 0.6 else "black")
    axes.set_xticks([0, 1], ["pass", "reject"])
    axes.set_yticks([0, 1], ["good", "defect"])
    axes.set(xlabel="verdict at the threshold", ylabel="true class (images)",
             title="Confusion matrix (count, % of row)")
    return _png(figure)


def recall_png(recall_by_type: dict[str, float], counts: dict[str, int] | None = None) -> bytes:
    """Horizontal bars: share of each defect type caught at the threshold."""
    names = sorted(recall_by_type)
    values = [100 * recall_by_type[n] for n in names]
    figure, axes = _figure(WIDTH, max(2.2, 0.9 + 0.45 * len(names)))
    bars = axes.barh(names, values, color=DEFECT_COLOUR, alpha=0.8)
    for bar, name, value in zip(bars, names, values):
        label = f"{value:.0f}%" + (f" of {counts[name]}" if counts and name in counts else "")
        inside = value > 60  # long bars carry their label inside, so that it never runs off the axes
        axes.text(value - 1.5 if inside else value + 1.5, bar.get_y() + bar.get_height() / 2, label, va="center",
                  ha="right" if inside else "left", fontsize=10, color="white" if inside else "black")
    axes.set(xlabel="recall: defects of this type caught (%)", xlim=(0, 100), title="Recall per defect type")
    axes.invert_yaxis()
    axes.grid(alpha=0.3, axis="x")
    return _png(figure)


def training_png(rows: Sequence[dict[str, Any]], x: str = "epoch") -> bytes:
    """Loss (left axis) and accuracy-like columns (right axis, %) per epoch, one line per column."""
    figure, axes = _figure(WIDTH * 1.25, HEIGHT)
    steps = [float(r[x]) for r in rows]
    columns = [c for c in rows[0] if c != x and all(_is_number(r.get(c)) for r in rows)] if rows else []
    losses = [c for c in columns if "loss" in c.lower()]
    others = [c for c in columns if c not in losses]
    for column in losses:
        axes.plot(steps, [float(r[column]) for r in rows], marker="o", ms=3, lw=2, label=column)
    axes.set(xlabel=x, ylabel="loss", title="Training curves")
    if all(step.is_integer() for step in steps):  # epochs are whole: no 2.5 tick between them
        from matplotlib.ticker import MaxNLocator
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    handles, names = axes.get_legend_handles_labels()
    if others:
        right = axes.twinx()
        for number, column in enumerate(others):
            values = np.array([float(r[column]) for r in rows])
            percent = values.max() <= 1.0
            right.plot(steps, values * (100 if percent else 1), ls="--", marker="s", ms=3, lw=2,
                       color=f"C{len(losses) + number}", label=column + (" (%)" if percent else ""))
        fractions = all(max(float(r[c]) for r in rows) <= 1 for c in others)
        right.set_ylabel(" / ".join(others) + (" (%)" if fractions else ""))
        more_handles, more_names = right.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    if handles:
        axes.legend(handles, names, fontsize=9, loc="best")
    return _png(figure)


def curve_png(curve: dict[str, Any], metric: str = "image_auroc") -> bytes:
    """The learning curve: one line per method (solid: similarity, dashed: classifier), the metric's mean over
    folds and repeats against the labelled defects per type, with a band of one standard deviation."""
    labels = list(curve["counts"])
    figure, axes = _figure(WIDTH * 1.3, HEIGHT * 1.1)
    positions = np.arange(len(labels))
    for number, (name, method) in enumerate(curve["methods"].items()):
        points = [method["points"].get(label, {}).get(metric) or {} for label in labels]
        means = np.array([np.nan if p.get("mean") is None else p["mean"] for p in points], dtype=float)
        stds = np.array([0.0 if p.get("std") is None else p["std"] for p in points], dtype=float)
        style = "-" if method.get("family") == "similarity" else "--"
        axes.plot(positions, means, style, marker="o", ms=4, lw=2, color=f"C{number}",
                  label=f"{name} ({method.get('family', '?')})")
        axes.fill_between(positions, means - stds, means + stds, color=f"C{number}", alpha=0.12)
    axes.set_xticks(positions, labels)
    title = {"image_auroc": "image AUROC", "f1": "F1 at the method's threshold"}.get(metric, metric)
    axes.set(xlabel=f"labelled defects per {curve.get('per', 'defect type')} given to the method",
             ylabel=title, title=f"Learning curve: {title}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _png(figure)


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return value is not None and value != ""
    except (TypeError, ValueError):
        return False
