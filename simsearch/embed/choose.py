"""The one choice between an index's two embedders, as anomalib's `deploy/inferencers/` chooses between its torch
and OpenVINO inferencers: the compiled copy (`CompiledEmbedder`, ONNX Runtime, no torch imported) or the torch
embedder the config describes (`embedder_from_config`). Both are `Embedder`s: the same config, fingerprint and
vectors, so everything after this choice is the same."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from simsearch.embed.base import Embedder
from simsearch.errors import InputError
from simsearch.runtime import Runtime

logger = logging.getLogger("simsearch.embed")


def choose_embedder(config: dict[str, Any], copy: tuple[bytes, dict] | None, runtime: Runtime,
                    weights: str | Path | None = None, where: str | Path = "the index",
                    options: dict[str, Any] | None = None) -> Embedder:
    """The embedder an index (`config`, its compiled `copy` or None) runs with under `runtime`.

    `runtime.compiled`: None runs the copy where it applies (on the CPU in float32, with no other weights file than
    the recorded one: `compiled_applies`) and the index has one, else torch; True runs the copy or fails saying
    why; False runs torch. A copy that cannot run is refused (True) or falls back to torch with a warning.
    `options`: further torch embedder options (e.g. channels_last). The caller checks the fingerprint."""
    from simsearch.embed.compiled import CompiledEmbedder, DamagedCopyError, compiled_applies
    from simsearch.embed.registry import embedder_from_config

    torch_options = {**runtime.embedder_options(), **(options or {})}
    required = runtime.compiled is True
    applies = runtime.compiled is not False and compiled_applies(weights, torch_options, config)
    if required and not applies:
        raise InputError("a compiled embedder runs on the CPU in float32, with the weights it was made from",
                         hint="leave device, precision and weights out, or leave {param} out", parameter="compiled")
    if applies and copy is not None:
        try:
            return CompiledEmbedder(*copy, config, batch_size=runtime.batch_size)
        except DamagedCopyError as error:  # the rest of the index was checked as it loaded
            if required:
                raise InputError(f"the compiled embedder in {where} cannot run: {error}",
                                 hint="export it again (`simsearch export`), or leave {param} out",
                                 parameter="compiled") from None
            logger.warning("the compiled embedder in %s cannot run (%s): running torch", where, error)
    elif required:
        raise InputError(f"the index in {where} has no compiled embedder",
                         hint="make one with `simsearch export` (Inspector.save(compile=True)), or leave {param} out",
                         parameter="compiled")
    return embedder_from_config(config, weights=weights, **torch_options)


__all__ = ["choose_embedder"]
