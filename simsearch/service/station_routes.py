"""The inspection station: the page (`/`, `/ui/`, its script and style, served from package data with a strict
Content-Security-Policy) and its JSON API under `/ui/api/` (bearer token like every API route). Teaching goes
through the same locked, atomic add and remove as `POST /exemplars` and `DELETE /exemplars/{id}`; each change
is written to the audit log with the image's score before and after."""

from __future__ import annotations

import hashlib
import io
import math
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from simsearch.data.datasets import check_defect_type, normalise_label
from simsearch.data.images import DECODE_MAX_SIDE, decode_image
from simsearch.report.overlay import overlay_png
from simsearch.service.routes import AUTH_ERRORS, require_token, service, station_who
from simsearch.service.state import ScoreRequest
from simsearch.service.station import AUDIT_SHOWN, HistoryItem, now, score_summary, threshold_status

if TYPE_CHECKING:
    from simsearch.service.app import Service

# No inline script or style, nothing from elsewhere; images from the page's own fetches (blob:) or data: URIs.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8"}
PAGE_PATHS = {"/", "/ui", "/ui/", "/ui/index.html", "/ui/app.js", "/ui/app.css"}  # no token: they hold no data

page = APIRouter(include_in_schema=False)
station_api = APIRouter(prefix="/ui/api", dependencies=[Depends(require_token)], responses=AUTH_ERRORS,
                        tags=["station"])


def _static(name: str) -> Response:
    data = resources.files("simsearch.service").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC_FILES[name], headers=PAGE_HEADERS)


@page.get("/")
@page.get("/ui")
@page.get("/ui/")
@page.get("/ui/index.html")
async def station_page() -> Response:
    return _static("index.html")


@page.get("/ui/app.js")
async def station_script() -> Response:
    return _static("app.js")


@page.get("/ui/app.css")
async def station_style() -> Response:
    return _static("app.css")


@station_api.get("/session", summary="Check the token; what the page needs to start")
async def session(request: Request):
    svc = service(request)
    index = svc.state.snapshot.index_
    return {"who": station_who(svc), "index": str(svc.state.folder), "generation": index.generation,
            "counts": index.counts(), "defect_types": index.defect_types(), "history_size": svc.station.history.size,
            "history": svc.station.history_info(), "drift_window": svc.station.drift.window}


@station_api.get("/history", summary="The latest scored images, newest first")
async def history(request: Request, after: int = Query(0, ge=0, description="Only items with a larger id.")):
    station = service(request).station
    return {"items": [item.to_dict() for item in station.history.newest(after)],
            "latest_id": station.history.latest_id, "size": station.history.size}


def _item(svc: "Service", item_id: int) -> HistoryItem:
    item = svc.station.history.get(item_id)
    if item is None:
        raise HTTPException(404, f"no history item {item_id} (it may have left the history)")
    return item


def _kept_image(item: HistoryItem) -> bytes:
    image = item.image  # read once: the history may let it go at any moment
    if image is None:
        raise HTTPException(410, f"the image of history item {item.id} is no longer kept (memory budget)")
    return image


async def _decode(svc: "Service", item: HistoryItem, image: bytes) -> np.ndarray:
    """The upload decoded as POST /score and POST /exemplars decode it."""
    decoded = await run_in_threadpool(decode_image, io.BytesIO(image), item.name, svc.settings.max_pixels,
                                      DECODE_MAX_SIDE, svc.decode_budget)
    return decoded.pixels


async def _rescore(svc: "Service", pixels: np.ndarray) -> dict[str, Any]:
    result = await svc.batcher.submit(ScoreRequest(pixels))
    return {**score_summary(result.to_dict()), "generation": svc.state.snapshot.index_.generation}


@station_api.get("/history/{item_id}/overlay", summary="The heatmap overlay with boxes of one history image",
                 response_class=Response)
async def overlay(request: Request, item_id: int):
    svc = service(request)
    item = _item(svc, item_id)
    pixels = await _decode(svc, item, _kept_image(item))
    result = await svc.batcher.submit(ScoreRequest(pixels, True))
    png = await run_in_threadpool(overlay_png, pixels, result, svc.state.snapshot.heatmap_scale_)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@station_api.get("/review", summary="The review queue: rejects and borderline first")
async def review_queue(request: Request, limit: int = Query(50, ge=1, le=500)):
    svc = service(request)
    station = svc.station
    return {"queue": [item.to_dict() for item in station.history.review_queue(limit)],
            "reviewed": [item.to_dict() for item in station.history.reviewed(limit)],
            "defect_types": svc.state.snapshot.index_.defect_types(), "audit": station.audit.tail(50)}


class Review(BaseModel):
    action: str = Field(..., description="good, defect or skip")
    type: str | None = Field(None, description="the defect type, with action=defect (an index type or a new one)")


def _claim(svc: "Service", item: HistoryItem, reviewed: bool) -> None:
    """Mark the item busy; 409 when another click on it is running, or it is (not) reviewed yet."""
    with svc.station.history.lock:
        if item.busy:
            raise HTTPException(409, f"history item {item.id} is being changed by another request; wait")
        if (item.review is not None) != reviewed:
            raise HTTPException(409, f"history item {item.id} " + ("is not reviewed: nothing to undo" if reviewed
                                                                   else "is already reviewed; undo it first"))
        item.busy = True


@station_api.post("/history/{item_id}/review", summary="Teach the index with a history image (or skip it)")
async def review(request: Request, item_id: int, body: Review):
    """good / defect: add the image as an exemplar (the locked, atomic add of POST /exemplars), score it again,
    audit the change; skip: only mark it reviewed."""
    svc = service(request)
    action = body.action.strip().lower()
    if action not in ("good", "defect", "skip"):
        raise HTTPException(422, f"action must be good, defect or skip, not {body.action[:40]!r}")
    if body.type and action != "defect":
        raise HTTPException(422, "type is only for action=defect")
    defect_type = check_defect_type(body.type, "type") if action == "defect" else None  # 422 when unfit
    item = _item(svc, item_id)
    image = _kept_image(item) if action != "skip" else None
    _claim(svc, item, reviewed=False)
    try:
        if action == "skip":
            item.review = {"action": "skip", "by": station_who(svc), "time": now()}
            svc.station.history.changed()
            return {"item": item.to_dict()}
        pixels = await _decode(svc, item, image)
        exemplar = await run_in_threadpool(svc.state.add, pixels, action, defect_type, f"station:{item.name[:200]}",
                                           hashlib.sha256(image).hexdigest())
        svc.station.thumbs.put(exemplar.sha256, item.thumb)
        after = await _rescore(svc, pixels)
        before = {**item.summary, "generation": item.generation}
        entry = svc.station.audit.write({"who": station_who(svc), "action": "add", "label": action, "type": defect_type,
                                         "exemplar": exemplar.id, "image": item.name, "history_id": item.id,
                                         "before": _scores(before), "after": _scores(after)})
        item.review = {"action": action, "type": defect_type, "exemplar": exemplar.id, "by": station_who(svc),
                       "time": entry["time"], "after": after}
        svc.station.history.changed()
        return {"item": item.to_dict(), "exemplar": exemplar.to_dict(), "before": before, "after": after,
                "audit": entry}
    finally:
        item.busy = False


@station_api.post("/history/{item_id}/undo", summary="Undo a review: remove the exemplar it added")
async def undo(request: Request, item_id: int):
    svc = service(request)
    item = _item(svc, item_id)
    image = item.image
    _claim(svc, item, reviewed=True)
    try:
        done = item.review
        if done.get("exemplar") is None:  # a skip: nothing in the index to take back
            item.review = None
            svc.station.history.changed()
            return {"item": item.to_dict()}
        removed = None
        if svc.state.get(done["exemplar"]) is not None:
            removed = await run_in_threadpool(svc.state.remove, done["exemplar"])  # last good: 409
        after = await _rescore(svc, await _decode(svc, item, image)) if image is not None else None
        entry = svc.station.audit.write({"who": station_who(svc), "action": "undo", "label": done["action"],
                                         "type": done.get("type"), "exemplar": done["exemplar"], "image": item.name,
                                         "history_id": item.id, "removed": removed is not None,
                                         "before": _scores(done.get("after")), "after": _scores(after)})
        item.review = None
        svc.station.history.changed()
        return {"item": item.to_dict(), "after": after, "audit": entry}
    finally:
        item.busy = False


def _scores(summary: dict | None) -> dict | None:
    if summary is None:
        return None
    return {key: summary.get(key) for key in ("score", "normalised", "verdict", "predicted_type", "generation")}


@station_api.get("/exemplars", summary="Exemplars by label and type, newest first")
async def exemplars(request: Request, label: str | None = Query(None, pattern="^(good|defect)$"),
                    type: str | None = Query(None, max_length=200), offset: int = Query(0, ge=0),
                    limit: int = Query(60, ge=1, le=500)):
    svc = service(request)
    index = svc.state.snapshot.index_
    chosen = [e for e in index.exemplars.values()
              if (label is None or e.label == label) and (type is None or e.defect_type == type)]
    chosen.sort(key=lambda e: e.id, reverse=True)
    return {"total": len(chosen), "offset": offset, "items": [e.to_dict() for e in chosen[offset:offset + limit]],
            "counts": index.counts(), "defect_types": index.defect_types(), "generation": index.generation}


class RelabelChange(BaseModel):
    label: str = Field(..., description="good or defect")
    type: str | None = Field(None, description="the defect type, with label=defect (an index type or a new one)")
    undo: bool = Field(False, description="this relabel takes back an earlier one (so the audit log says)")


@station_api.post("/exemplars/{exemplar_id}/relabel", summary="Relabel an exemplar (as PATCH /exemplars/{id})",
                  responses={404: {"description": "no such exemplar"},
                             409: {"description": "the last good exemplar cannot become a defect"},
                             422: {"description": "a bad label or type, or the exemplar's file is not on the server"}})
async def relabel(request: Request, exemplar_id: int, body: RelabelChange):
    """The exemplar's file embedded again and added back under the new label with a new id, in one locked,
    atomic change (`PATCH /exemplars/{id}`); audited with the label and type before and after. The page's
    undo relabels the new exemplar back (`undo`: true)."""
    svc = service(request)
    label = normalise_label(body.label)  # DatasetError: 422
    if body.type and label != "defect":
        raise HTTPException(422, "type is only for label=defect")
    defect_type = check_defect_type(body.type, "type") if label == "defect" else None  # 422 when unfit
    old, new = await run_in_threadpool(svc.state.relabel, exemplar_id, label, defect_type or None)
    entry = None
    if new.id != old.id:
        entry = svc.station.audit.write({"who": station_who(svc), "action": "undo relabel" if body.undo else "relabel",
                                         "label": new.label, "type": new.defect_type, "exemplar": new.id,
                                         "was": old.id, "image": new.path,
                                         "before": {"label": old.label, "type": old.defect_type, "exemplar": old.id},
                                         "after": {"label": new.label, "type": new.defect_type, "exemplar": new.id}})
    return {"old": old.to_dict(), "new": new.to_dict(), "changed": new.id != old.id, "audit": entry,
            "defect_types": svc.state.snapshot.index_.defect_types()}


@station_api.get("/exemplars/{exemplar_id}/thumb", summary="An exemplar's thumbnail (JPEG)", response_class=Response,
                 responses={404: {"description": "no such exemplar, or no image of it on this machine"}})
async def exemplar_thumb(request: Request, exemplar_id: int):
    svc = service(request)
    exemplar = svc.state.get(exemplar_id)
    if exemplar is None:
        raise HTTPException(404, f"no exemplar with id {exemplar_id}")
    thumb = await run_in_threadpool(svc.station.thumbs.get, exemplar.sha256, exemplar.path)
    if thumb is None:
        raise HTTPException(404, f"no image of exemplar {exemplar_id} on this machine")
    return Response(thumb, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@station_api.get("/threshold", summary="The threshold, the scores to move it on, and whether it is stale")
async def threshold(request: Request):
    """Labelled scores: the calibration goods (the good exemplars' leave-one-out scores) and the reviewed
    history images (as the reviewer labelled them, their score before teaching); unlabelled: the rest of the
    history."""
    svc = service(request)
    station = svc.station
    samples = [{"score": s, "label": "good", "source": "calibration good"} for s in station.reference_scores()]
    for item in station.history.newest():
        review = item.review or {}
        label = review.get("action") if review.get("action") in ("good", "defect") else None
        samples.append({"score": item.summary["score"], "label": label, "source": f"history {item.id}"})
    return {**threshold_status(svc.state.snapshot.index_), "generation": svc.state.snapshot.index_.generation,
            "samples": samples, "reference": station.reference_info}


class ThresholdChange(BaseModel):
    value: float = Field(..., description="the raw score at and above which an image is rejected")
    reason: str = Field(..., min_length=1, max_length=500, description="why (kept with the threshold)")


@station_api.post("/threshold", summary="Store a manual threshold with its reason (like calibrate)")
async def apply_threshold(request: Request, body: ThresholdChange):
    svc = service(request)
    reason = body.reason.strip()
    if not math.isfinite(body.value) or body.value <= 0:
        raise HTTPException(422, f"the threshold must be a positive finite score, not {body.value}")
    if not reason or any(ord(c) < 32 and c not in "\t" for c in reason):
        raise HTTPException(422, "give a reason in one line of printable text")
    current = await threshold(request)
    labelled = [(1 if s["label"] == "defect" else 0, s["score"]) for s in current["samples"] if s["label"]]
    record = await run_in_threadpool(svc.state.set_threshold, manual_threshold(
        body.value, reason, labelled, current["threshold"], len(svc.station.reference_scores()), station_who(svc)))
    previous = current["threshold"]
    entry = svc.station.audit.write({"who": station_who(svc), "action": "threshold", "reason": reason,
                                     "before": {"threshold": previous["value"] if previous else None},
                                     "after": {"threshold": record["value"], "generation": record["generation"]}})
    return {"threshold": record, "audit": entry}


def manual_threshold(value: float, reason: str, labelled: list[tuple[int, float]], previous: dict | None,
                     goods: int, who: str) -> dict[str, Any]:
    """A manual threshold record: the value a person chose, with its reason and what it gives on the labelled
    scores (the normalised score's scale from the lowest good score, as calibrate sets it)."""
    from simsearch.decide.threshold import Threshold
    from simsearch.evaluate.metrics import binary_metrics

    labels = np.array([label for label, _ in labelled], dtype=int)
    scores = np.array([score for _, score in labelled], dtype=np.float64)
    good = scores[labels == 0]
    candidates = [float(good.min())] if len(good) else []
    if previous:
        candidates.append(float(previous.get("low", 0.0)))
    low = next((c for c in candidates if 0 < c < value), value / 2)
    high = float(max([value, *scores.tolist()]))
    metrics = binary_metrics(labels, scores, value) if len(scores) else {}
    return Threshold(value=float(value), low=low, high=high, policy="manual", reason=f"{reason} (set by {who})",
                     metrics=metrics, calibrated_on=(f"the inspection station: {goods} calibration goods and "
                                                     f"{len(scores) - goods} reviewed images"),
                     created=now()).to_record()


@station_api.get("/drift", summary="Passed images' scores per window against the calibration goods")
async def drift(request: Request):
    station = service(request).station
    windows = [w.to_dict() for w in station.drift.windows]
    latest = station.drift.latest()
    return {"window": station.drift.window, "windows": windows[::-1], "current": list(station.drift.current),
            "last_scores": list(station.drift.last_scores), "reference": station.reference_scores(),
            "reference_info": station.reference_info,
            "warning": latest.message() if latest is not None else None}


@station_api.post("/drift/reference", summary="Compute the calibration goods again (in the background)")
async def recompute_reference(request: Request):
    svc = service(request)
    started = svc.station.start_reference(lambda: svc.state.snapshot, force=True)
    return {"started": started, "reference": svc.station.reference_info}


@station_api.get("/audit", summary="The audit log, newest first")
async def audit(request: Request, limit: int = Query(AUDIT_SHOWN, ge=1, le=5000)):
    return {"entries": service(request).station.audit.tail(limit)}


__all__ = ["PAGE_PATHS", "page", "station_api"]
