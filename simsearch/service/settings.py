"""Limits and options of the HTTP service, and reading its access token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from simsearch.data.images import MAX_PIXELS
from simsearch.errors import InputError

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the small form fields around the image


class TokenFileError(InputError):
    """A token file that cannot be used."""


@dataclass(frozen=True)
class ServiceSettings:
    """What the server accepts and how it batches; every field has a safe default."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = MAX_PIXELS
    token: str | None = None  # when set, every API route needs `Authorization: Bearer <token>`
    max_batch: int = 16  # scores per model call
    max_wait_ms: float = 2.0  # how long the batcher waits for more requests once one is queued
    max_queue: int = 256  # scores waiting for the model; beyond this the server answers 503
    max_requests: int = 512  # requests in progress at once; beyond this the server answers 503
    read_timeout_s: float = 30.0  # a client that sends no body bytes for this long gets 408
    # Slow clients (slowloris): a request's headers must be complete this long after the connection opens
    # or its previous answer, and its body must keep up min_body_rate bytes/s once read_timeout_s has passed.
    header_timeout_s: float = 10.0
    min_body_rate: float = 10_000.0
    # Slow readers: a client must have taken an answer send_timeout_s + bytes / min_send_rate seconds after its
    # first byte was written (one that reads nothing is reset after send_timeout_s).
    send_timeout_s: float = 30.0
    min_send_rate: float = 10_000.0
    decode_budget_bytes: int = 1024 * 1024 * 1024  # what concurrent image decodes may hold at once
    n_nearest: int = 3
    token_name: str = "token"  # who made a change, in the station's audit log (the token file's name)
    history_size: int = 200  # scored images the inspection station keeps (newest first)
    history_image_bytes: int = 256 * 1024 * 1024  # of their uploads, kept for teaching; the oldest go first
    drift_window: int = 50  # passed images per drift window
    history_on_disk: bool = False  # the history also kept in <index>/station/history/, read back at start

    @property
    def max_body_bytes(self) -> int:
        """The cap on a whole request body: the image plus multipart framing."""
        return self.max_upload_bytes + MULTIPART_OVERHEAD

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_batch", "max_queue", "max_requests",
                     "decode_budget_bytes", "history_size", "history_image_bytes", "drift_window"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, not {getattr(self, name)}")
        limits = ("read_timeout_s", "header_timeout_s", "min_body_rate", "send_timeout_s", "min_send_rate")
        if not self.max_wait_ms >= 0 or not all(getattr(self, name) > 0 for name in limits):  # NaN fails too
            raise InputError(f"max_wait_ms must be >= 0; {', '.join(limits)} > 0")


def read_token_file(path: str | Path) -> str:
    """The token in a file (first line, stripped); refuses a missing, empty, short, or group- or
    world-readable file, checking the mode before reading a byte."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # one open file for the check and the read: no swap in between
            mode = os.fstat(handle.fileno()).st_mode
            if os.name == "posix" and mode & 0o077:
                raise TokenFileError(f"{path}: the token file can be read or written by other users "
                                     f"(mode {mode & 0o777:o}); chmod 600 it")
            text = handle.read(4096).decode("utf-8")
    except OSError as error:
        raise TokenFileError(f"{path}: cannot read the token file ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"{path}: the token file is not UTF-8 text") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise TokenFileError(f"{path}: the token must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    return token
