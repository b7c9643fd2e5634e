"""The HTTP endpoints: score, exemplars, info, health, readiness and metrics. Handlers only translate
between HTTP and the service objects; every failure becomes a status with a JSON `detail` (simsearch's errors
through the app's one handler)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from simsearch.data.datasets import check_defect_type, normalise_label
from simsearch.data.images import DECODE_MAX_SIDE, DecodedImage, ImageError, ImageTooLargeError, decode_image
from simsearch.report.overlay import overlay_png
from simsearch.service.state import ScoreRequest

if TYPE_CHECKING:
    from simsearch.service.app import Service

_bearer = HTTPBearer(auto_error=False, description="The token of `simsearch serve --token-file`.")


def _error(status: int, detail: str) -> dict[str, Any]:
    return {"description": detail, "content": {"application/json": {"example": {"detail": detail}}}}


AUTH_ERRORS = {401: _error(401, "missing or wrong bearer token")}
UPLOAD_ERRORS = {
    413: _error(413, "upload or image over the size or pixel limit"),
    415: _error(415, "the upload is not a readable image"),
    422: _error(422, "a required field is missing or invalid"),
    503: _error(503, "the server is busy or shutting down; retry"),
}


def service(request: Request) -> "Service":
    return request.app.state.service


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """When a token is configured, the request must carry it (compared in constant time)."""
    expected = service(request).settings.token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


api = APIRouter(dependencies=[Depends(require_token)], responses=AUTH_ERRORS)
open_routes = APIRouter()


async def _read_upload(svc: "Service", image: UploadFile) -> tuple[bytes, DecodedImage]:
    """The upload's bytes and decoded image (reduced to DECODE_MAX_SIDE, within the server's decode memory
    budget); 413 over the limits, 415 when it is not an image."""
    limit = svc.settings.max_upload_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the upload is over the limit of {limit / 2**20:g} MB")
    if not data:
        raise ImageError(f"{image.filename or 'upload'}: empty file")
    try:
        decoded = await run_in_threadpool(decode_image, io.BytesIO(data), image.filename or "upload",
                                          svc.settings.max_pixels, DECODE_MAX_SIDE, svc.decode_budget)
    except ImageTooLargeError as error:  # the CLI's advice (an environment variable) is not the client's to take
        raise ImageTooLargeError(error.message, hint=f"this server accepts at most "
                                 f"{svc.settings.max_pixels / 1e6:.3g} megapixels") from None
    return data, decoded  # any other ImageError: 415 from the app's handler


@api.post("/score", summary="Score one image", responses=UPLOAD_ERRORS | {
    409: _error(409, "the index cannot score (no good exemplars)")})
async def score(request: Request, image: UploadFile = File(..., description="The image (PNG, JPEG, BMP, TIFF)."),
                heatmap: bool = Query(False, description="Also return the overlay PNG, base64, as heatmap_png.")):
    """The JSON of `simsearch score --json` for the uploaded image: score, normalised score, verdict,
    nearest exemplars, boxes. `path` is the upload's file name."""
    svc = service(request)
    data, decoded = await _read_upload(svc, image)
    generation = svc.state.snapshot.index_.generation
    # BatcherUnavailable: 503; no good exemplars: 409
    result = await svc.batcher.submit(ScoreRequest(decoded.pixels, heatmap))
    result.path = image.filename
    png = None
    if heatmap:  # drawn on the decoded pixels, in their frame, before the boxes go back to the original's
        png = await run_in_threadpool(overlay_png, decoded.pixels, result, svc.state.snapshot.heatmap_scale_)
    height, width = decoded.original_size
    result.boxes = [box.scaled(*decoded.scale, height, width) for box in result.boxes]
    result.image_size = decoded.original_size
    body = result.to_dict()
    if decoded.notes:
        body["notes"] = decoded.notes
    # the inspection station's history (thumbnail, verdict; the upload kept for teaching)
    await run_in_threadpool(svc.station.record, image.filename or "upload", generation, body, decoded.pixels, data)
    if png is not None:
        body["heatmap_png"] = base64.b64encode(png).decode("ascii")
    return JSONResponse(body)


CONFLICT = {409: _error(409, "another writer held the index folder longer than the server waits; try again")}


@api.post("/exemplars", summary="Add an exemplar", responses=UPLOAD_ERRORS | CONFLICT)
async def add_exemplar(request: Request, image: UploadFile = File(..., description="The exemplar image."),
                       label: str = Form(..., description="good or defect (also ok/ng/bad/anomaly)."),
                       type: str | None = Form(None, description="Defect type, with label=defect."),
                       allow_duplicates: bool = Form(False, description="Add the image even where the index "
                                                     "already holds the same file (sha256).")):
    """Add one exemplar; it is saved to the index on disk (atomically) before this answers. Returns it
    with its new id; a file the index already holds (same sha256) is skipped, as `simsearch add` skips it:
    the answer is then `skipped` (why) and `held_as` (the exemplar holding the file), with no `id`."""
    svc = service(request)
    label = normalise_label(label)  # DatasetError: 422
    if type and label != "defect":
        raise HTTPException(422, "type is only for label=defect")
    type = check_defect_type(type, "type")  # before the upload is decoded: long or control characters, 422
    data, decoded = await _read_upload(svc, image)
    source = f"upload:{(image.filename or 'image')[:200]}"
    exemplar, added = await run_in_threadpool(svc.state.add_unless_held, decoded.pixels, label, type or None,
                                              source, hashlib.sha256(data).hexdigest(), allow_duplicates)
    notes = {"notes": decoded.notes} if decoded.notes else {}
    if not added:
        kind = exemplar.label + (f", type {exemplar.defect_type}" if exemplar.defect_type else "")
        return {"skipped": f"duplicate: the index already holds this image as exemplar "
                f"#{exemplar.id} ({kind}, from {exemplar.path}); nothing was added (allow_duplicates=true adds "
                f"it again; PATCH /exemplars/{exemplar.id} relabels it)", "held_as": exemplar.to_dict()} | notes
    await run_in_threadpool(_keep_for_station, svc, exemplar, decoded.pixels)
    return exemplar.to_dict() | notes


def station_who(svc: "Service") -> str:
    """Who changes the index, for the audit log: the token's name (never the token)."""
    return svc.settings.token_name if svc.settings.token is not None else "anonymous (no token)"


def _keep_for_station(svc: "Service", exemplar: Any, pixels: Any) -> None:
    """The audit entry and thumbnail of an exemplar added through the API."""
    from simsearch.service.station import thumbnail_jpeg

    svc.station.thumbs.put(exemplar.sha256, thumbnail_jpeg(pixels))
    svc.station.audit.write({"who": station_who(svc), "action": "add", "label": exemplar.label,
                             "type": exemplar.defect_type, "exemplar": exemplar.id, "image": exemplar.path})


@api.get("/exemplars/{exemplar_id}", summary="Describe an exemplar",
         responses={404: _error(404, "no exemplar with this id")})
async def get_exemplar(request: Request, exemplar_id: int):
    """The catalogue entry of one exemplar: path, label, type, sha256, when it was added."""
    exemplar = service(request).state.get(exemplar_id)
    if exemplar is None:
        raise HTTPException(404, f"no exemplar with id {exemplar_id}")
    return exemplar.to_dict()


@api.delete("/exemplars/{exemplar_id}", summary="Remove an exemplar",
            responses={404: _error(404, "no exemplar with this id"),
                       409: _error(409, "the last good exemplar cannot be removed, or the folder changed")})
async def remove_exemplar(request: Request, exemplar_id: int):
    """Remove one exemplar; saved to the index on disk (atomically) before this answers."""
    svc = service(request)
    exemplar = await run_in_threadpool(svc.state.remove, exemplar_id)  # unknown id: 404
    svc.station.audit.write({"who": station_who(svc), "action": "remove", "label": exemplar.label,
                             "type": exemplar.defect_type, "exemplar": exemplar.id, "image": exemplar.path})
    return {"removed": exemplar.to_dict()}


class Relabel(BaseModel):
    """The new label of an exemplar (and its defect type, with label=defect)."""

    label: str
    type: str | None = None


@api.patch("/exemplars/{exemplar_id}", summary="Relabel an exemplar",
           responses={404: _error(404, "no exemplar with this id"),
                      409: _error(409, "the last good exemplar cannot become a defect, or the folder changed"),
                      422: _error(422, "a bad label or type, or the exemplar's file is gone or changed")})
async def relabel_exemplar(request: Request, exemplar_id: int, change: Relabel):
    """Change an exemplar's label and type: its file is embedded again and added back with a new id (ids are
    never reused), in one transaction saved to the index on disk before this answers. Returns the old and the
    new exemplar."""
    svc = service(request)
    label = normalise_label(change.label)
    if change.type and label != "defect":
        raise HTTPException(422, "type is only for label=defect")
    defect_type = check_defect_type(change.type, "type")
    old, new = await run_in_threadpool(svc.state.relabel, exemplar_id, label, defect_type or None)
    if new.id != old.id:
        svc.station.audit.write({"who": station_who(svc), "action": "relabel", "label": new.label,
                                 "type": new.defect_type, "exemplar": new.id, "was": old.id, "image": new.path})
    return {"id": new.id, "old": old.to_dict(), "new": new.to_dict(), "changed": new.id != old.id}


@api.get("/info", summary="Describe the served index")
async def info(request: Request):
    """Embedder, mode, exemplar counts, threshold, limits and batching of this server."""
    svc = service(request)
    settings = svc.settings
    return {**svc.state.describe(),
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                       "read_timeout_s": settings.read_timeout_s, "header_timeout_s": settings.header_timeout_s,
                       "min_body_rate": settings.min_body_rate, "max_requests": settings.max_requests,
                       "decode_budget_bytes": settings.decode_budget_bytes},
            "batching": {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms,
                         "max_queue": settings.max_queue, "waiting": svc.batcher.waiting},
            "auth": settings.token is not None}


@api.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request):
    """Requests by route and status, latency histograms, errors, batch sizes, exemplar counts."""
    return PlainTextResponse(service(request).metrics.render(), media_type="text/plain; version=0.0.4")


@open_routes.get("/healthz", summary="Liveness")
async def healthz():
    """200 while the process serves HTTP."""
    return {"status": "ok"}


@open_routes.get("/readyz", summary="Readiness", responses={503: _error(503, "not ready")})
async def readyz(request: Request):
    """200 when the model and index are loaded and scoring is accepted; 503 while starting or stopping."""
    svc = service(request)
    if not svc.batcher.running:
        return JSONResponse({"status": "not ready", "detail": "scoring is not running"}, status_code=503)
    await run_in_threadpool(svc.state.refresh)  # one stat unless another writer committed
    if svc.state.unservable is not None:
        return JSONResponse({"status": "not ready", "detail": svc.state.unservable}, status_code=503)
    return {"status": "ready", "exemplars": svc.state.snapshot.index_.counts()}
