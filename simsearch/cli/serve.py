"""`simsearch serve`: the HTTP service over an index (arguments only; the work is in simsearch.service)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from simsearch.cli.app import app
from simsearch.cli.options import BackboneWeightsOption, DeviceOption
from simsearch.cli.output import chosen_index, fail, handle_errors, warn
from simsearch.runtime import DEFAULT_BATCH_SIZE

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@app.command()
def serve(
    index: Optional[Path] = typer.Option(None, "--index", "-i", help="Index folder to serve (default: "
                                         "artifacts/index, said on stderr)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port (0: any free port, printed at start)."),
    token_file: Optional[Path] = typer.Option(None, "--token-file",
                                              help="File holding the bearer token clients must send."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest accepted upload."),
    max_megapixels: float = typer.Option(100.0, "--max-megapixels", help="Largest accepted image."),
    weights: Optional[Path] = BackboneWeightsOption,
    device: Optional[str] = DeviceOption,
    max_batch: int = typer.Option(DEFAULT_BATCH_SIZE, "--max-batch", help="Most concurrent scores per model call."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", help="Wait for more scores to batch, at most."),
    read_timeout: float = typer.Option(30.0, "--read-timeout", help="Seconds a stalled upload may stall."),
    header_timeout: float = typer.Option(10.0, "--header-timeout",
                                         help="Seconds a client has to send its request headers."),
    min_upload_rate: float = typer.Option(10.0, "--min-upload-rate",
                                          help="KB/s an upload must keep up after --read-timeout seconds."),
    send_timeout: float = typer.Option(30.0, "--send-timeout",
                                       help="Seconds a client may leave its answer unread."),
    min_download_rate: float = typer.Option(10.0, "--min-download-rate",
                                            help="KB/s a client must take its answer at after --send-timeout "
                                                 "seconds."),
    max_connections: int = typer.Option(512, "--max-connections",
                                        help="Requests in progress at once (beyond: 503; a quarter kept for "
                                             "requests with the token); at this many open connections, the "
                                             "oldest without the token is closed."),
    history: int = typer.Option(200, "--history",
                                help="Scored images the inspection page (/) keeps, newest first."),
    history_on_disk: bool = typer.Option(False, "--history-on-disk",
                                         help="Also keep the history (and its uploads, within 256 MB) in "
                                              "INDEX/station/history/, read back at the next start."),
    drift_window: int = typer.Option(50, "--drift-window",
                                     help="Passed images per drift window (their scores vs the calibration "
                                          "goods)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request."),
    compiled: Optional[bool] = typer.Option(None, "--compiled/--no-compiled", help="Run the index's compiled "
                                            "embedder (ONNX Runtime: the same vectors). Default: on a CPU, "
                                            "where the index has one."),
) -> None:
    """Serve an index over HTTP: POST /score, /exemplars; GET /info, /metrics, /docs (see docs/service.md)."""
    with handle_errors():
        from simsearch.service.server import serve_index
        from simsearch.service.settings import ServiceSettings, read_token_file

        index = chosen_index(index)
        if not 0 <= port <= 65535:
            fail(f"--port must be 0..65535, not {port}")
        token = read_token_file(token_file) if token_file is not None else None
        if token is None and host not in LOOPBACK:
            warn(f"serving on {host} without --token-file: anyone who can reach it can add and remove exemplars")
        settings = ServiceSettings(max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                                   max_pixels=int(max_megapixels * 1_000_000), token=token,
                                   max_batch=max_batch, max_wait_ms=max_wait_ms, read_timeout_s=read_timeout,
                                   header_timeout_s=header_timeout, min_body_rate=min_upload_rate * 1000,
                                   send_timeout_s=send_timeout, min_send_rate=min_download_rate * 1000,
                                   max_requests=max_connections, history_size=history,
                                   drift_window=drift_window, history_on_disk=history_on_disk,
                                   token_name=token_file.name if token_file is not None else "token")

        def announce(bound_host: str, bound_port: int) -> None:
            # On stdout, flushed: scripts starting the server with --port 0 read the port from here.
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            print(f"simsearch serving {index} on http://{shown}:{bound_port} "
                  "(inspection page at /, API docs at /docs)", flush=True)

        serve_index(index, settings, host, port, weights=weights, device=device, compiled=compiled,
                    access_log=access_log, on_start=announce)
        sys.stdout.flush()
