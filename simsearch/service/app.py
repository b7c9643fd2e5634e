"""The FastAPI application: model and index loaded once, a micro-batcher for scores, copy-on-write index
state for adds and removes, body limits, metrics, JSON errors."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import simsearch
from simsearch.data.images import DecodeBudget, ImageError, ImageTooLargeError
from simsearch.errors import (
    ConflictError,
    IndexProblem,
    InputError,
    NotFoundError,
    SimsearchError,
    UnknownComponentError,
    WeightsError,
)
from simsearch.index.storage import StorageError
from simsearch.inspector import Inspector
from simsearch.runtime import Runtime
from simsearch.service.batcher import BatcherUnavailable, MicroBatcher
from simsearch.service.docs import offline_docs
from simsearch.service.metrics import Metrics
from simsearch.service.middleware import (
    AccessGuardMiddleware,
    CrossSiteGuardMiddleware,
    RequestMetricsMiddleware,
    UploadGuardMiddleware,
)
from simsearch.service.routes import api, open_routes
from simsearch.service.settings import ServiceSettings
from simsearch.service.state import IndexState
from simsearch.service.station import Station
from simsearch.service.station_routes import PAGE_PATHS, page, station_api

log = logging.getLogger("simsearch.service")

DESCRIPTION = """Score inspection images against a simsearch exemplar index, and add or remove exemplars
while serving. Errors are JSON `{"detail": ...}` with a 4xx/5xx status; simsearch's own errors add `hint`
(what to do, naming request fields), `parameter` and `category`. When the server was started with
`--token-file`, send `Authorization: Bearer <token>` (not needed for /healthz, /readyz and the docs)."""


# The HTTP status of each error class: the first match wins, so subclasses come before their parents.
STATUS_BY_ERROR: tuple[tuple[type[SimsearchError], int], ...] = (
    (BatcherUnavailable, 503),
    (ImageTooLargeError, 413),
    (ImageError, 415),
    (NotFoundError, 404),
    (UnknownComponentError, 400),
    (InputError, 422),
    (ConflictError, 409),
    (StorageError, 500),  # the index could not be saved: the server's disk, not the request
    (IndexProblem, 409),  # the served index's state refuses the request (e.g. no good exemplars)
    (WeightsError, 500),
)


def error_status(error: SimsearchError) -> int:
    """The HTTP status for a simsearch error (500 for a class without a row)."""
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(error, cls)), 500)


def error_response(error: SimsearchError) -> JSONResponse:
    """`{"detail", "hint", "parameter", "category"}`: the hint names the request's fields, not CLI flags."""
    detail, hint = error.named()  # parameters by their field names
    if isinstance(error, StorageError):
        detail = f"the index could not be saved; nothing changed: {detail}"
    return JSONResponse({"detail": detail, "hint": hint, "parameter": error.parameter, "category": error.category},
                        status_code=error_status(error),
                        headers={"Retry-After": "1"} if isinstance(error, BatcherUnavailable) else None)


@dataclass
class Service:
    """What the handlers use: settings, the index state, the score batcher, the metrics and the decode budget."""

    settings: ServiceSettings
    state: IndexState
    batcher: MicroBatcher
    metrics: Metrics
    decode_budget: DecodeBudget
    station: Station


def load_inspector(folder: str | Path, settings: ServiceSettings, weights: str | Path | None = None,
                   device: str | None = None, compiled: bool | None = None) -> Inspector:
    """Open an index with its embedder (its compiled copy where that applies), batch size matched to the
    batcher's."""
    runtime = Runtime.of(batch_size=settings.max_batch, device=device, compiled=compiled)
    return Inspector.load(folder, weights=weights, n_nearest=settings.n_nearest, runtime=runtime)


def warm_up(inspector: Inspector) -> None:
    """One blank image scored as the service starts, beside its first requests: the embedder's first run and
    the bank's search cells (trained at a bank's first search) are paid for here, not by the first click."""
    import numpy as np

    try:
        inspector.score(np.zeros((64, 64, 3), np.uint8))
    except Exception as error:  # a warm-up only: the first request then pays, and says what is wrong
        log.info("warm-up score failed: %s", error)


def create_app(source: Inspector | str | Path, settings: ServiceSettings | None = None,
               folder: str | Path | None = None, weights: str | Path | None = None,
               device: str | None = None, compiled: bool | None = None) -> FastAPI:
    """The app over an index folder (loaded now), or over a fitted Inspector saved to `folder`."""
    settings = settings or ServiceSettings()
    if isinstance(source, Inspector):
        if folder is None:
            raise InputError("serving an Inspector needs the index folder its changes are saved to")
        inspector = source
    else:
        folder = Path(source) if folder is None else folder
        inspector = load_inspector(source, settings, weights, device, compiled)
    state = IndexState(inspector, folder)
    metrics = Metrics()
    batcher = MicroBatcher(state.score, settings.max_batch, settings.max_wait_ms, settings.max_queue,
                           on_batch=metrics.observe_batch)
    metrics.gauge("simsearch_exemplars", lambda: {k: float(v) for k, v in state.snapshot.index_.counts().items()})
    metrics.gauge("simsearch_queue_waiting", lambda: {"": float(batcher.waiting)})
    station = Station(folder, settings.history_size, settings.history_image_bytes, settings.drift_window,
                      settings.token_name, settings.max_pixels, settings.history_on_disk)
    for name, read in station.drift.gauges().items():
        metrics.gauge(name, read)
    metrics.gauge("simsearch_station_history", lambda: {"": float(len(station.history))})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        station.start()  # the history's disk writer, where kept on disk
        station.start_reference(lambda: state.snapshot)  # the calibration goods for drift, in the background
        threading.Thread(target=warm_up, args=(state.snapshot,), name="simsearch-warm-up", daemon=True).start()
        log.info("serving %s (%s exemplars)", folder, state.snapshot.index_.counts())
        yield
        # uvicorn has stopped taking connections and let in-flight requests finish; drain and close.
        await batcher.stop()
        state.wait_for_writes()
        station.close()  # the history written a last time, where kept on disk
        log.info("stopped; index %s at generation %s", folder, state.snapshot.index_.generation)

    # /docs from the swagger-ui-bundle package's files, so it works offline (docs.py); ReDoc only exists on a CDN.
    app = FastAPI(title="simsearch", version=simsearch.__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = Service(settings, state, batcher, metrics, DecodeBudget(settings.decode_budget_bytes),
                                station)
    app.include_router(api)
    app.include_router(station_api)
    app.include_router(open_routes)
    app.include_router(page)
    open_paths = {route.path for route in open_routes.routes} | offline_docs(app)

    @app.exception_handler(SimsearchError)
    async def simsearch_error(request: Request, error: SimsearchError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({error.__class__.__name__}); see the server log"},
                            status_code=500)

    app.add_middleware(UploadGuardMiddleware, max_body_bytes=settings.max_body_bytes, timeout=settings.read_timeout_s,
                       min_rate=settings.min_body_rate)
    app.add_middleware(CrossSiteGuardMiddleware)
    app.add_middleware(AccessGuardMiddleware, token=settings.token, open_paths=open_paths,
                       max_requests=settings.max_requests, open_pages=PAGE_PATHS)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)  # added last = outermost: sees every status
    return app
