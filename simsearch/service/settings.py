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
    read_timeout_s: float = 30.0  # a client that sends no body bytes for this long gets 408
    n_nearest: int = 3

    @property
    def max_body_bytes(self) -> int:
        """The cap on a whole request body: the image plus multipart framing."""
        return self.max_upload_bytes + MULTIPART_OVERHEAD

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.read_timeout_s <= 0:
            raise InputError("max_wait_ms must be >= 0 and read_timeout_s > 0")


def read_token_file(path: str | Path) -> str:
    """The token in a file (first line, stripped); refuses a missing, empty or world-readable file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TokenFileError(f"{path}: cannot read the token file ({error.strerror or error})") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise TokenFileError(f"{path}: the token must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    if os.name == "posix" and path.stat().st_mode & 0o004:
        raise TokenFileError(f"{path}: the token file is readable by everyone; chmod 600 it")
    return token
