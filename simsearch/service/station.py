"""The inspection station's state, kept by the service beside the index: a bounded history of the images the
service scored (thumbnail, verdict, neighbours; the upload's bytes while a memory budget allows, so a person
can teach the index with it), their reviews, the audit log of every change (`<index>/station/audit.jsonl`),
thumbnails of exemplars, and drift of the passed images' scores against the calibration goods.

The index keeps no calibration scores, so "calibration goods" are the good exemplars' leave-one-out scores
(what good-only calibration scores; up to REFERENCE_IMAGES of them, re-embedded from their files), computed
once in the background and kept in `<index>/station/reference.json`."""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import math
import os
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from simsearch.service.station_history import HistoryFile

log = logging.getLogger("simsearch.service")

STATION_FOLDER = "station"  # inside the index folder; index saves only touch their own generation files
BORDERLINE = 0.1  # |normalised score - 0.5| within this: borderline, reviewed first with the rejects
THUMB_SIDE = 128
REFERENCE_IMAGES = 50
DRIFT_P_VALUE = 0.01  # a window whose passed scores differ from the calibration goods' at this level warns
DRIFT_WINDOWS_KEPT = 100
AUDIT_SHOWN = 200
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def thumbnail_jpeg(pixels: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of RGB pixels, at most `side` pixels on a side."""
    image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    image.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _first(neighbours: Any) -> dict | None:
    return neighbours[0] if isinstance(neighbours, list) and neighbours else None


def verdict_of(body: dict) -> str:
    """reject / pass from a score's JSON, or uncalibrated where the index has no threshold."""
    anomaly = body.get("is_anomaly")
    return "uncalibrated" if anomaly is None else ("reject" if anomaly else "pass")


def score_summary(body: dict) -> dict[str, Any]:
    """What the page shows of one score (the JSON of ScoreResult.to_dict)."""
    return {"score": body["score"], "normalised": body.get("normalised_score"), "verdict": verdict_of(body),
            "nearest": _first(body.get("nearest")), "nearest_defect": body.get("nearest_defect"),
            "predicted_type": body.get("predicted_type"), "boxes": len(body.get("boxes") or [])}


@dataclass
class HistoryItem:
    """One image the service scored, as the page shows it; `image` holds the upload's bytes while kept."""

    id: int
    time: str
    name: str
    generation: int
    summary: dict[str, Any]
    thumb: bytes
    image: bytes | None = None
    review: dict[str, Any] | None = None  # {"action": good|defect|skip, "exemplar": id, "after": summary, ...}
    busy: bool = field(default=False, repr=False)  # a review or undo of it is running

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "name": self.name, "generation": self.generation,
                **self.summary, "thumb": base64.b64encode(self.thumb).decode("ascii"),
                "image_kept": self.image is not None, "review": self.review}

    @property
    def priority(self) -> bool:
        """A reject or a borderline score: reviewed first."""
        normalised = self.summary.get("normalised")
        return self.summary["verdict"] == "reject" or (normalised is not None and abs(normalised - 0.5) <= BORDERLINE)


class History:
    """The last `size` scored images, newest first, with their uploads kept within `image_budget` bytes
    (the oldest images are let go first; their rows stay)."""

    def __init__(self, size: int, image_budget: int):
        self.size = size
        self.image_budget = image_budget
        self._items: "OrderedDict[int, HistoryItem]" = OrderedDict()
        self._next_id = 1
        self._image_bytes = 0
        self.lock = threading.Lock()
        self.on_change: Callable[[], None] = lambda: None  # the disk copy's writer, where kept on disk

    def restore(self, items: list[HistoryItem], next_id: int) -> None:
        """Start from items read back (oldest first, checked by the reader), ids continuing from next_id."""
        with self.lock:
            self._items = OrderedDict((item.id, item) for item in items[-self.size:])
            self._next_id = max([next_id, *(item.id + 1 for item in items)])
            self._image_bytes = sum(len(item.image or b"") for item in self._items.values())

    def changed(self) -> None:
        """A review or an undo changed an item (records call it themselves)."""
        self.on_change()

    def record(self, name: str, generation: int, summary: dict, thumb: bytes, image: bytes | None) -> HistoryItem:
        with self.lock:
            item = HistoryItem(self._next_id, now(), name, generation, summary, thumb)
            self._next_id += 1
            self._items[item.id] = item
            while len(self._items) > self.size:
                _, dropped = self._items.popitem(last=False)
                self._image_bytes -= len(dropped.image or b"")
            if image is not None and len(image) <= self.image_budget:
                item.image = image
                self._image_bytes += len(image)
                for older in self._items.values():  # oldest first
                    if self._image_bytes <= self.image_budget:
                        break
                    if older.image is not None and older is not item:
                        self._image_bytes -= len(older.image)
                        older.image = None
        self.on_change()
        return item

    def get(self, item_id: int) -> HistoryItem | None:
        with self.lock:
            return self._items.get(item_id)

    def newest(self, after: int = 0) -> list[HistoryItem]:
        with self.lock:
            return [item for item in reversed(self._items.values()) if item.id > after]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def latest_id(self) -> int:
        return self._next_id - 1

    def review_queue(self, limit: int) -> list[HistoryItem]:
        """Unreviewed images that can still be taught: rejects and borderline first, then by score, highest first."""
        with self.lock:
            open_items = [i for i in self._items.values() if i.review is None and i.image is not None]
        open_items.sort(key=lambda i: (not i.priority, -(i.summary.get("normalised") or 0.0), -i.summary["score"]))
        return open_items[:limit]

    def reviewed(self, limit: int) -> list[HistoryItem]:
        with self.lock:
            done = [i for i in self._items.values() if i.review is not None]
        done.sort(key=lambda i: i.review.get("time", ""), reverse=True)
        return done[:limit]


class AuditLog:
    """JSON lines of every change to the index made through the service: who (the token's name), when,
    what, and the image's score before and after. Appended after the change is committed."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"time": now(), **entry}
        line = json.dumps(entry, ensure_ascii=True, allow_nan=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return entry

    def tail(self, limit: int = AUDIT_SHOWN) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first (lines that are not JSON records are skipped)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 512 * 1024))
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            if len(entries) >= limit:
                break
        return entries


@dataclass
class DriftWindow:
    """The passed images' scores of one window against the calibration goods'."""

    end: str
    count: int
    quantiles: list[float]  # p10, p50, p90
    reference_median: float | None
    ks_statistic: float | None
    p_value: float | None

    @property
    def warning(self) -> bool:
        return self.p_value is not None and self.p_value < DRIFT_P_VALUE

    def message(self) -> str | None:
        if not self.warning:
            return None
        ratio = self.quantiles[1] / self.reference_median if self.reference_median else float("nan")
        return (f"the passed images' scores rose above the calibration goods': KS D = {self.ks_statistic:.2f} "
                f"(p = {self.p_value:.1g}), median {self.quantiles[1]:.4g} vs {self.reference_median:.4g} "
                f"({ratio:.2f}x), over {self.count} images up to {self.end}")

    def to_dict(self) -> dict[str, Any]:
        return {"end": self.end, "count": self.count, "p10": self.quantiles[0], "median": self.quantiles[1],
                "p90": self.quantiles[2], "reference_median": self.reference_median,
                "ks_statistic": self.ks_statistic, "p_value": self.p_value, "warning": self.warning,
                "message": self.message()}


class Drift:
    """Scores of passed images (all images where the index has no threshold), per window of `window` images,
    compared with the calibration goods by a one-sided two-sample Kolmogorov-Smirnov test (passed scores
    larger than the goods')."""

    def __init__(self, window: int):
        self.window = window
        self.current: list[float] = []
        self.last_scores: list[float] = []
        self.windows: deque[DriftWindow] = deque(maxlen=DRIFT_WINDOWS_KEPT)
        self.reference: np.ndarray | None = None
        self._lock = threading.Lock()

    def observe(self, score: float, verdict: str) -> None:
        if verdict == "reject" or not math.isfinite(score):
            return
        with self._lock:
            self.current.append(float(score))
            if len(self.current) >= self.window:
                self.windows.append(self.summarise(self.current))
                self.last_scores, self.current = self.current, []

    def summarise(self, scores: list[float]) -> DriftWindow:
        from scipy.stats import ks_2samp

        values = np.asarray(scores, dtype=np.float64)
        quantiles = [float(q) for q in np.quantile(values, [0.1, 0.5, 0.9])]
        reference = self.reference
        if reference is None or len(reference) < 2:
            return DriftWindow(now(), len(values), quantiles, None, None, None)
        # one-sided: the risk is passed scores rising towards the threshold (lighting, focus, a new supplier);
        # scores below the goods' are no risk (and leave-one-out goods score above fresh ones on a coreset)
        test = ks_2samp(values, reference, alternative="less")
        return DriftWindow(now(), len(values), quantiles, float(np.median(reference)), float(test.statistic),
                           float(test.pvalue))

    def latest(self) -> DriftWindow | None:
        return self.windows[-1] if self.windows else None

    def gauges(self) -> dict[str, Callable[[], dict[str, float]]]:
        """/metrics families of the latest complete window (empty until there is one)."""
        def figure(read: Callable[[DriftWindow], float | None]) -> Callable[[], dict[str, float]]:
            def gauge() -> dict[str, float]:
                latest = self.latest()
                value = read(latest) if latest is not None else None
                return {} if value is None else {"": float(value)}
            return gauge

        return {"simsearch_drift_windows": lambda: {"": float(len(self.windows))},
                "simsearch_drift_passed_median_score": figure(lambda w: w.quantiles[1]),
                "simsearch_drift_passed_p90_score": figure(lambda w: w.quantiles[2]),
                "simsearch_drift_reference_median_score": figure(lambda w: w.reference_median),
                "simsearch_drift_ks_statistic": figure(lambda w: w.ks_statistic),
                "simsearch_drift_p_value": figure(lambda w: w.p_value),
                "simsearch_drift_warning": figure(lambda w: float(w.warning) if w.p_value is not None else None)}


class ThumbnailStore:
    """Exemplar thumbnails by the image's sha256: from the station folder, else made from the exemplar's
    file where it is on this machine (and kept)."""

    def __init__(self, folder: Path, max_pixels: int):
        self.folder = folder
        self.max_pixels = max_pixels
        self._memory: "OrderedDict[str, bytes]" = OrderedDict()
        self._lock = threading.Lock()

    def _file(self, sha256: str) -> Path | None:
        return self.folder / f"{sha256}.jpg" if _SHA256.match(sha256 or "") else None

    def put(self, sha256: str, thumb: bytes) -> None:
        path = self._file(sha256)
        if path is None:
            return
        self._remember(sha256, thumb)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".tmp{threading.get_ident()}")
            temporary.write_bytes(thumb)
            os.replace(temporary, path)
        except OSError as error:  # a thumbnail is a convenience: the change itself is already committed
            log.warning("cannot keep the thumbnail %s: %s", path, error)

    def _remember(self, sha256: str, thumb: bytes) -> None:
        with self._lock:
            self._memory[sha256] = thumb
            self._memory.move_to_end(sha256)
            while len(self._memory) > 4096:
                self._memory.popitem(last=False)

    def get(self, sha256: str, source_path: str) -> bytes | None:
        """The thumbnail, or None where neither a kept one nor the source file exists."""
        from simsearch.data.images import ImageError, decode_image

        with self._lock:
            if sha256 in self._memory:
                return self._memory[sha256]
        path = self._file(sha256)
        if path is not None and path.is_file():
            thumb = path.read_bytes()
            self._remember(sha256, thumb)
            return thumb
        if source_path.startswith("upload:") or not Path(source_path).is_file():
            return None
        try:
            decoded = decode_image(source_path, source_path, self.max_pixels, 4 * THUMB_SIDE)
        except ImageError:
            return None
        thumb = thumbnail_jpeg(decoded.pixels)
        self.put(sha256, thumb) if path is not None else self._remember(sha256, thumb)
        return thumb


class Station:
    """Everything the inspection page reads and the service records for it."""

    def __init__(self, folder: str | Path, history_size: int = 200, image_budget: int = 256 * 2**20,
                 drift_window: int = 50, who: str = "anonymous", max_pixels: int = 100_000_000,
                 history_on_disk: bool = False):
        self.folder = Path(folder) / STATION_FOLDER
        self.history = History(history_size, image_budget)
        self.history_file: HistoryFile | None = None
        if history_on_disk:  # read back now (checked), written from a background thread from here on
            self.history_file = HistoryFile(self.folder / "history")
            self.history_file.load(self.history)
            self.history.on_change = self.history_file.changed
        self.audit = AuditLog(self.folder / "audit.jsonl")
        self.drift = Drift(drift_window)
        self.thumbs = ThumbnailStore(self.folder / "thumbs", max_pixels)
        self.who = who
        self.reference_info: dict[str, Any] = {"state": "not computed"}
        self._reference_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the history's disk writer (where kept on disk)."""
        if self.history_file is not None:
            self.history_file.start()

    def close(self) -> None:
        """Write the history a last time (where kept on disk)."""
        if self.history_file is not None:
            self.history_file.close()

    def history_info(self) -> dict[str, Any]:
        """Where the history is kept, and why what was on disk was not used (for the page)."""
        kept = self.history_file
        return {"size": self.history.size, "on_disk": None if kept is None else str(kept.path),
                "warning": None if kept is None else kept.warning}

    def record(self, name: str, generation: int, body: dict, pixels: np.ndarray, image: bytes | None) -> HistoryItem:
        """Keep one scored image (called by POST /score, in a worker thread)."""
        summary = score_summary(body)
        item = self.history.record(name, generation, summary, thumbnail_jpeg(pixels), image)
        self.drift.observe(summary["score"], summary["verdict"])
        return item

    # -- calibration goods ----------------------------------------------------------------------------
    @property
    def reference_file(self) -> Path:
        return self.folder / "reference.json"

    def load_reference(self) -> bool:
        """The kept calibration goods' scores, if any; True when read."""
        try:
            record = json.loads(self.reference_file.read_text())
            scores = np.asarray(record["scores"], dtype=np.float64)
            if scores.ndim != 1 or not np.isfinite(scores).all():
                raise ValueError("scores are not finite numbers")
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring %s: %s", self.reference_file, error)
            return False
        self.drift.reference = scores
        self.reference_info = {"state": "ready", "images": len(scores), "generation": record.get("generation"),
                               "computed": record.get("computed"), "source": record.get("source")}
        return True

    def compute_reference(self, inspector: Any) -> None:
        """The good exemplars' leave-one-out scores (re-embedded from their files), kept on disk."""
        from simsearch.errors import SimsearchError
        from simsearch.inspector import leave_one_out_scores

        self.reference_info = {"state": "computing"}
        try:
            scores = leave_one_out_scores(inspector, limit=REFERENCE_IMAGES)
        except SimsearchError as error:
            self.reference_info = {"state": "unavailable", "detail": error.message}
            log.info("no calibration goods for drift: %s", error.message)
            return
        except Exception as error:  # a background job: say why, never take the service down
            log.exception("computing the calibration goods failed")
            self.reference_info = {"state": "unavailable", "detail": f"{error.__class__.__name__}: {error}"}
            return
        record = {"scores": [float(s) for s in scores], "generation": inspector.index_.generation,
                  "computed": now(), "source": "the good exemplars' leave-one-out scores"}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.reference_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(record))
            os.replace(temporary, self.reference_file)
        except OSError as error:
            log.warning("cannot keep %s: %s", self.reference_file, error)
        self.drift.reference = np.asarray(scores, dtype=np.float64)
        self.reference_info = {"state": "ready", "images": len(scores), "generation": record["generation"],
                               "computed": record["computed"], "source": record["source"]}

    def start_reference(self, snapshot: Callable[[], Any], force: bool = False) -> bool:
        """Compute the calibration goods in a background thread (unless kept, or one is running)."""
        if not force and self.load_reference():
            return False
        if self._reference_thread is not None and self._reference_thread.is_alive():
            return False
        self.reference_info = {"state": "computing"}
        self._reference_thread = threading.Thread(target=lambda: self.compute_reference(snapshot()),
                                                  name="simsearch-station-reference", daemon=True)
        self._reference_thread.start()
        return True

    def wait_for_reference(self, timeout: float | None = None) -> None:
        if self._reference_thread is not None:
            self._reference_thread.join(timeout)

    def reference_scores(self) -> list[float]:
        reference = self.drift.reference
        return [] if reference is None else [float(s) for s in reference]


def threshold_status(index: Any) -> dict[str, Any]:
    """The stored threshold and whether the exemplars changed since it was set (a warning for the page)."""
    record = index.threshold
    if not record:
        return {"threshold": None, "stale": False, "warning": "the index has no threshold yet: no verdicts"}
    set_at = record.get("generation")
    if isinstance(set_at, int) and not isinstance(set_at, bool):
        stale = set_at < index.generation
        warning = (f"the threshold was set on an earlier generation of the index ({set_at}; it is now at "
                   f"{index.generation}): exemplars changed since") if stale else None
    else:  # set by `simsearch calibrate`, which records when, not the generation
        created = record.get("created") or ""
        newer = [e for e in index.exemplars.values() if created and e.added > created]
        stale = bool(newer)
        warning = (f"the threshold was set on an earlier generation of the index: {len(newer)} exemplar(s) were "
                   f"added after it ({created})") if stale else None
    return {"threshold": record, "stale": stale, "warning": warning}
