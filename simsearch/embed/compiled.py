"""A compiled copy of an embedder: its network as ONNX, run by ONNX Runtime on the CPU.

It gives the embedder's vectors (to float rounding, checked when the copy is made) without importing torch,
which alone takes seconds: a CLI run reaches its first result sooner, and ONNX Runtime runs the network
faster than torch on a CPU. An index keeps the copy of the embedder it was built with as an opaque artifact
(`ExemplarIndex.artifacts[ARTIFACT]`, its record beside it: `keep_copy`, `stored_copy`); `Inspector.load` runs
it where `compiled_applies` says it may.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Mapping, MutableMapping, Sequence

import numpy as np

from simsearch.data.transforms import ImageSize, input_shape, parse_size, resize_rgb, size_config
from simsearch.embed.base import Embedder, Embeddings
from simsearch.errors import IndexProblem, UnknownComponentError
from simsearch.files import file_sha256
from simsearch.runtime import DEFAULT_BATCH_SIZE, check_batch_size, gpu_visible

if TYPE_CHECKING:
    from torch import nn

COMPILED_FORMAT = "onnx"
TOLERANCE = 1e-3  # largest difference from torch's vectors allowed, relative to their largest magnitude
PROBE_IMAGES = 2  # random images both runtimes embed when a copy is made (2: a batch axis that stays free)
MAX_BATCH = 4096
OPSET = 18
RUNTIME_OPTIONS = {"batch_size", "device", "precision", "channels_last"}
ARTIFACT = "embedder"  # the name of the copy among an index's artifacts (its file: embedder-NNNNNN.onnx)


class DamagedCopyError(IndexProblem, ValueError):
    """A compiled copy that cannot stand for its embedder: a damaged record, or a model ONNX Runtime refuses."""


class UntrustedCopyError(IndexProblem):
    """A compiled copy that reaches outside its own bytes (ONNX external data, an operator outside the standard
    ONNX domains): refused, never run and never replaced silently by torch, since only an edit makes one."""


_COPIES: dict[str, tuple[bytes, dict] | None] = {}  # fingerprint -> copy: an embedder is compiled once a process
logger = logging.getLogger("simsearch.embed")


def compile_embedder(embedder: Embedder) -> tuple[bytes, dict] | None:
    """(ONNX bytes, record) for the embedder's network, checked against torch on probe images; None where the
    embedder has no inference module or the export fails (its index then runs torch, as before)."""
    fingerprint = embedder.fingerprint
    if fingerprint in _COPIES:
        return _COPIES[fingerprint]
    found = embedder.inference_module()
    if found is None:
        return None
    module, size = found
    try:
        model = _export(module, size)
        difference, grid = _check(model, module, size)
    except Exception as error:  # an exporter gap for some torchvision model must not fail the save
        logger.info("no compiled copy of the %s embedder: %s", embedder.config.get("kind"), error)
        _COPIES[fingerprint] = None  # and is not tried again for every save
        return None
    record = {"format": COMPILED_FORMAT, "fingerprint": fingerprint, "weights_digest": embedder.weights_digest,
              "image_size": size_config(size), "dim": embedder.dim, "grid": grid, "max_difference": difference}
    _COPIES[fingerprint] = (model, record)
    return _COPIES[fingerprint]


def _export(module: "nn.Module", size: ImageSize) -> bytes:
    """The module as ONNX with a free batch axis: torch's TorchScript exporter where torch still has it (about
    1 s for ResNet-18 here), else its dynamo exporter (about 5 s); `_check` tests either's result."""
    import copy
    import io

    import torch

    if any(p.device.type != "cpu" for p in module.parameters()):
        module = copy.deepcopy(module).cpu()
    module = module.eval()
    example = torch.zeros(PROBE_IMAGES, *input_shape(size), 3, dtype=torch.uint8)
    names = {"input_names": ["images"], "output_names": ["image", "patches"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracing notes are not the user's business
        try:
            buffer = io.BytesIO()
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=OPSET, **names,
                              dynamic_axes={"images": {0: "n"}, "image": {0: "n"}, "patches": {0: "n"}})
            return buffer.getvalue()
        except Exception as error:  # a torch without it, or a model it cannot trace
            logger.debug("TorchScript export failed (%s); trying the dynamo exporter", error)
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, external_data=False, **names,
                                    dynamic_shapes=({0: torch.export.Dim("images", min=1, max=MAX_BATCH)},))
    return program.model_proto.SerializeToString()


def _check(model: bytes, module: "nn.Module", size: ImageSize) -> tuple[float, list[int]]:
    """(largest difference, patch grid): both runtimes on the same random images."""
    import torch

    images = np.random.default_rng(0).integers(0, 256, (PROBE_IMAGES, *input_shape(size), 3), dtype=np.uint8)
    device = next(module.parameters()).device
    with torch.inference_mode():
        expected = [t.float().cpu().numpy() for t in module(torch.from_numpy(images).to(device))]
    got = _session(model).run(None, {"images": images})
    difference = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
    scale = max(float(np.abs(e).max()) for e in expected)
    if not difference <= TOLERANCE * max(scale, 1e-6):
        raise ValueError(f"its vectors differ from torch's by {difference:.3g} (largest value {scale:.3g})")
    return difference, [int(v) for v in expected[1].shape[1:3]]


def _session(model: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.load_model_format", "ONNX")  # never guessed from the bytes
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # as torch does: e.g. Ray gives each actor its CPUs this way
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def stored_copy(artifacts: Mapping[str, bytes], records: Mapping[str, dict],
                fingerprint: str) -> tuple[bytes, dict] | None:
    """(model bytes, record) of the copy an index keeps (its `artifacts`, `artifact_records`), when it is one of
    the index's embedder (`fingerprint`); None otherwise."""
    record = records.get(ARTIFACT)
    if ARTIFACT not in artifacts or not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        return None
    return artifacts[ARTIFACT], record


def keep_copy(artifacts: MutableMapping[str, bytes], records: MutableMapping[str, dict],
              copy: tuple[bytes, dict]) -> None:
    """Store a copy from `compile_embedder` among an index's artifacts."""
    artifacts[ARTIFACT], records[ARTIFACT] = copy


def describe_copy(artifacts: Mapping[str, bytes], records: Mapping[str, dict],
                  fingerprint: str) -> dict[str, Any] | None:
    """The copy's format and largest difference from torch, for `simsearch info` (None: the index has none)."""
    copy = stored_copy(artifacts, records, fingerprint)
    return None if copy is None else {key: copy[1].get(key) for key in ("format", "max_difference")}


def compiled_applies(weights: str | os.PathLike | None, runtime: dict, config: dict | None = None) -> bool:
    """Whether a run with these options may use a compiled copy of the embedder `config` describes: float32 on
    the CPU (a GPU, where torch sees one, is for torch), and no weights file named now unless it is the one the
    copy was made from (its sha256 is in the config; torch refuses any other with a clear error)."""
    device = runtime.get("device")
    on_cpu = str(device) == "cpu" if device not in (None, "") else not gpu_visible()
    return (on_cpu and set(runtime) <= RUNTIME_OPTIONS and runtime.get("precision", "float32") == "float32"
            and not runtime.get("channels_last") and (weights is None or _same_weights(weights, config or {})))


def _same_weights(weights: str | os.PathLike, config: dict) -> bool:
    source = config.get("weights_source")
    if not isinstance(source, str) or not source.startswith("file:") or not os.path.isfile(weights):
        return False
    return file_sha256(weights) == source[len("file:"):]


class CompiledEmbedder(Embedder):
    """An embedder's compiled copy, run by ONNX Runtime: the same config, weights digest (so fingerprint) and
    vectors.

    Not registered: it is opened from the index that keeps it, never built from a spec or a config.
    """

    kind = "compiled"

    def __init__(self, model: bytes, record: dict, config: dict, batch_size: int = DEFAULT_BATCH_SIZE):
        _check_record(record)
        check_self_contained(model)
        try:
            self.session = _session(model)
        except Exception as error:  # ONNX Runtime's errors derive from Exception alone
            raise DamagedCopyError(f"ONNX Runtime cannot open it: {error}") from None
        self.image_size = parse_size(record["image_size"])  # checked by _check_record
        _check_outputs(self.session, self.image_size, record)
        self.record = record
        self._config = dict(config)
        self.batch_size = check_batch_size(batch_size)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def weights_digest(self) -> str:
        return self.record["weights_digest"]

    @property
    def dim(self) -> int:
        return self.record["dim"]

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """Resize to the network's input size (on a loader thread; `embed` then only stacks)."""
        return resize_rgb(pixels, self.image_size)

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        if not len(images):
            return Embeddings(np.zeros((0, self.dim), np.float32), np.zeros((0, *self.record["grid"], self.dim),
                                                                            np.float32))
        rows = np.stack([resize_rgb(i, self.image_size) for i in images])
        image, patches = self.session.run(None, {"images": rows})
        return Embeddings(image=image, patches=np.ascontiguousarray(patches))

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: Any = None, **runtime: Any) -> "CompiledEmbedder":
        raise UnknownComponentError("a compiled embedder is opened from the index that keeps it",
                                    hint="open the index with Inspector.load")

    @classmethod
    def from_spec(cls, argument: str, **options: Any) -> "CompiledEmbedder":
        raise UnknownComponentError("a compiled embedder is opened from the index that keeps it",
                                    hint="open the index with Inspector.load")


def _check_outputs(session: Any, size: ImageSize, record: dict) -> None:
    """One blank image through the model: it must give the vectors its record describes (a file is never
    trusted; the exporter may leave output sizes symbolic, so the model's declared shapes would not tell)."""
    grid, dim = record["grid"], record["dim"]
    try:
        outputs = session.run(None, {"images": np.zeros((1, *input_shape(size), 3), np.uint8)})
    except Exception as error:  # ONNX Runtime's errors derive from Exception alone
        raise DamagedCopyError(f"it does not take the images its record describes ({error})") from None
    if [(o.shape, o.dtype) for o in outputs] != [((1, dim), np.float32), ((1, *grid, dim), np.float32)]:
        raise DamagedCopyError("its outputs are not those of the embedder it stands for")


def _check_record(record: object) -> None:
    """A record read from a file: its types and ranges, before anything is sized from it."""
    def whole(value: object, low: int, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    ok = (isinstance(record, dict) and record.get("format") == COMPILED_FORMAT
          and isinstance(record.get("fingerprint"), str) and isinstance(record.get("weights_digest"), str)
          and _is_size(record.get("image_size")) and whole(record.get("dim"), 1, 1 << 16)
          and isinstance(record.get("grid"), list) and len(record["grid"]) == 2
          and all(whole(v, 1, 4096) for v in record["grid"]))
    if not ok:
        raise DamagedCopyError("its record is damaged")


def _is_size(value: object) -> bool:
    try:
        return all(side >= 16 for side in input_shape(parse_size(value)))
    except ValueError:
        return False


# -- what a compiled copy may hold: its own weights and standard operators, nothing that names a file ------------
# ONNX's protobuf fields on the way to every tensor and node of a model (onnx/onnx.proto): message -> field number
# -> the message it holds. Read from the wire format itself, so the scoring-only install (no `onnx` package) checks
# exactly what the full one does; ONNX's own tensor walk (onnx.external_data_helper) also skips sparse tensors.
_MESSAGES: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node", 11: "attribute"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 13, 14, 1
_NODE_OP, _NODE_DOMAIN, _FUNCTION_NAME, _FUNCTION_DOMAIN = 4, 7, 1, 10
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})  # what torch.onnx writes; others (e.g. EPContext) may name files
_MAX_DEPTH = 64  # subgraphs nested deeper than any exporter writes: refused rather than followed for ever


def check_self_contained(model: bytes) -> None:
    """UntrustedCopyError unless every tensor of the ONNX model holds its own data (no external data: a path
    ONNX Runtime would read weights from) and every operator is a standard ONNX one or a function the model
    defines itself; DamagedCopyError where the bytes are not an ONNX model's protobuf."""
    functions: set[tuple[str, str]] = set()
    nodes: list[tuple[str, str]] = []
    try:
        _walk(memoryview(model), "model", 0, functions, nodes)
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise DamagedCopyError(f"it is not an ONNX model ({error or 'truncated'})") from None
    for domain, op in nodes:
        if domain not in STANDARD_DOMAINS and (domain, op) not in functions:
            raise UntrustedCopyError(f"it runs the operator {op!r} of the domain {domain!r}, which no saved simsearch "
                                     "copy holds (operators outside standard ONNX may read files)",
                                     hint="rebuild the index, or check it with `simsearch verify`")


def _walk(data: memoryview, message: str, depth: int, functions: set, nodes: list) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    fields = _MESSAGES.get(message, {})
    strings: dict[int, str] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            if message == "tensor" and number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
                raise UntrustedCopyError("it reads a tensor from a file outside it (ONNX external data)",
                                         hint="rebuild the index, or check it with `simsearch verify`")
        elif wire == 2:
            size, position = _varint(data, position)
            if position + size > len(data):
                raise ValueError("a field runs past the end")
            body = data[position:position + size]
            position += size
            if message == "tensor" and number in (_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION):
                raise UntrustedCopyError("it names a file to read a tensor from (ONNX external data)",
                                         hint="rebuild the index, or check it with `simsearch verify`")
            if number in fields:
                _walk(body, fields[number], depth + 1, functions, nodes)
            elif (message, number) in (("node", _NODE_OP), ("node", _NODE_DOMAIN), ("function", _FUNCTION_NAME),
                                       ("function", _FUNCTION_DOMAIN)):
                strings[number] = bytes(body).decode("utf-8")
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:  # groups (3, 4) are not in ONNX's schema
            raise ValueError(f"wire type {wire}")
    if position != len(data):
        raise ValueError("a field runs past the end")
    if message == "node":
        nodes.append((strings.get(_NODE_DOMAIN, ""), strings.get(_NODE_OP, "")))
    elif message == "function":
        functions.add((strings.get(_FUNCTION_DOMAIN, ""), strings.get(_FUNCTION_NAME, "")))


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("a number longer than 64 bits")


__all__ = ["ARTIFACT", "CompiledEmbedder", "DamagedCopyError", "UntrustedCopyError", "check_self_contained",
           "compile_embedder", "compiled_applies", "describe_copy", "keep_copy", "stored_copy"]
