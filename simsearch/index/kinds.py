"""Index kinds: which FAISS index holds a store's vectors, named by a FAISS factory string (`Flat`, `HNSW32`,
`IVF4096,Flat`, `IVF65536,PQ48`, `OPQ48,IVF4096,PQ48`, ...) or `auto` (chosen by size), trained on the
store's own vectors, with its search depth (nprobe / efSearch) chosen for recall and its recall against
exact search measured on a held-out sample of its own vectors (left out while tuning, added after)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth

from simsearch.errors import InputError

AUTO = "auto"
EXACT = "Flat"
AUTO_EXACT_MAX = 200_000  # up to here an exact search (pruned on a CPU) is fast enough: auto keeps it exact
# (a whole ELPV or MVTec patch bank stays exact: approximate search only where exact is too slow)
AUTO_PQ_MIN = 5_000_000  # from here 8-bit vectors no longer fit in memory comfortably: auto compresses (PQ)
TRAIN_POINTS_PER_CELL = 39  # FAISS's own floor for k-means (fewer: a warning and poor cells)
TRAIN_SAMPLE_PER_CELL = 64  # k-means on more than this per cell costs time and gains little
RECALL_TARGET = 0.99  # nprobe / efSearch grow until the sample's recall@1 reaches this (scores stay exact-like)
RECALL_QUERIES = 200
MIN_NPROBE = 4  # IVF lists searched at least (1e6 real patch vectors, out of sample: nprobe 1 gave recall@1 0.72,
# 4 gave 0.97, 8 gave 0.98; benchmarks/search_scale.py)
RECALL_K = 10
ADD_CHUNK = 100_000  # vectors added at a time: bounds the memory a build needs beyond the index itself
ROLES = ("good", "defect", "patches")

_HINT = "use auto, Flat, HNSW32, IVF4096,Flat, IVF65536,PQ48 or another FAISS factory string (L2)"


@dataclass
class KindRecord:
    """What a store was asked for and what it holds: saved in the manifest, shown by `simsearch info`."""

    requested: str  # "auto" or the factory string asked for
    kind: str  # the factory string built ("Flat" = exact)
    trained_on: int = 0  # vectors in the store when it was built
    nprobe: int | None = None  # IVF kinds: inverted lists searched per query
    ef_search: int | None = None  # HNSW kinds
    recall_at_1: float | None = None
    recall_at_10: float | None = None
    recall_queries: int = 0
    note: str | None = None  # why the kind built differs from the one requested

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "KindRecord":
        """A record read from a manifest, checked field by field (ValueError when malformed)."""
        if not isinstance(record, Mapping):
            raise ValueError("an index kind record is not a mapping")
        out = cls(requested=_text(record.get("requested")), kind=_text(record.get("kind")))
        for name in ("trained_on", "recall_queries"):
            value = record.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} {value!r} is not a count")
            setattr(out, name, value)
        for name in ("nprobe", "ef_search"):
            value = record.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} {value!r} is not a positive whole number")
            setattr(out, name, value)
        for name in ("recall_at_1", "recall_at_10"):
            value = record.get(name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                      or not 0.0 <= value <= 1.0):
                raise ValueError(f"{name} {value!r} is not a share")
            setattr(out, name, None if value is None else float(value))
        note = record.get("note")
        if note is not None and not isinstance(note, str):
            raise ValueError("note is not text")
        out.note = note
        check_kind(out.requested, 8)
        check_kind(out.kind, 8)
        return out


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an index kind")
    return value


# -- naming and choosing ---------------------------------------------------------------------------------
def check_kind(spec: str, dim: int) -> str:
    """The kind, stripped, if FAISS can build it for `dim`-d L2 vectors; InputError (naming `index_kind`) if not."""
    spec = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(spec, str) or not spec:
        raise InputError(f"index kind {spec!r} is not a name", hint=_HINT, parameter="index_kind")
    if spec.lower() == AUTO:
        return AUTO
    if "IDMap" in spec:
        raise InputError(f"index kind {spec!r}: leave out IDMap, ids are kept by simsearch", hint=_HINT,
                         parameter="index_kind")
    try:
        index = faiss.index_factory(int(dim), spec, faiss.METRIC_L2)
    except RuntimeError as error:
        reason = " ".join(str(error).split()) or "not a FAISS factory string"
        reason = re.sub(r"^.*' failed: ", "", re.sub(r"^Error in .*? at \S+?:\d+: ", "", reason))
        raise InputError(f"index kind {spec!r} cannot be built for {dim}-d vectors: {reason}", hint=_HINT,
                         parameter="index_kind") from None
    if _is_binary_or_unsupported(index):
        raise InputError(f"index kind {spec!r} is not an L2 index simsearch can search", hint=_HINT,
                         parameter="index_kind")
    return spec


def _is_binary_or_unsupported(index: faiss.Index) -> bool:
    return index.metric_type != faiss.METRIC_L2


def parse_kinds(kinds: str | Mapping[str, str] | Iterable[str] | None, dim: int) -> dict[str, str]:
    """Role -> kind for the stores `good`, `defect` and `patches`. A single kind applies to every store; a
    mapping or `role=kind` items name stores one by one (the rest stay auto)."""
    chosen = {role: AUTO for role in ROLES}
    if kinds is None:
        return chosen
    if isinstance(kinds, str):
        items: list[tuple[str | None, str]] = [(None, kinds)]
    elif isinstance(kinds, Mapping):
        items = list(kinds.items())
    else:
        items = []
        for item in kinds:
            role, sep, spec = str(item).partition("=")
            items.append((role.strip(), spec) if sep else (None, str(item)))
    for role, spec in items:
        if role is not None and role not in ROLES:
            raise InputError(f"index kind for {role!r}: the stores are {', '.join(ROLES)}",
                             hint="write ROLE=KIND, e.g. patches=IVF1024,Flat", parameter="index_kind")
        checked = check_kind(spec, dim)
        for name in (ROLES if role is None else (role,)):
            chosen[name] = checked
    return chosen


def auto_kind(n: int, dim: int) -> str:
    """The kind `auto` picks for `n` vectors: exact up to AUTO_EXACT_MAX; above, IVF with about 4*sqrt(n) lists
    found through an HNSW graph of their centroids, holding 8-bit scalar-quantised vectors (SQ8), or PQ codes
    (dim/8 bytes a vector) from AUTO_PQ_MIN."""
    if n <= AUTO_EXACT_MAX:
        return EXACT
    lists = 2 ** int(round(math.log2(4 * math.sqrt(n))))
    lists = max(1, min(lists, 2 ** int(math.log2(max(n // TRAIN_POINTS_PER_CELL, 1)))))  # cells it can train
    # Measured on 1e6 real patch vectors (benchmarks/search_scale.py), 784 queries at nprobe 4, recall@1 0.97
    # each: IVF4096,Flat 138 ms, IVF4096,SQ8 110 ms, IVF4096_HNSW32,SQ8 34 ms. A whole image's patches spend
    # most of a flat quantizer's time choosing lists (784 x 4096 distances); the graph finds them in a few
    # hundred. SQ8 scans a quarter of the bytes in a quarter of the memory, its distances within ~0.1 %.
    if n >= AUTO_PQ_MIN:
        bytes_per_vector = next((m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0), dim)
        return f"IVF{lists}_HNSW32,PQ{bytes_per_vector}"
    return f"IVF{lists}_HNSW32,SQ8"


def training_minimum(spec: str, dim: int) -> int:
    """Vectors a kind needs to be trained well (FAISS's 39 per k-means centroid); 0 when it needs none."""
    if spec in (AUTO, EXACT):
        return 0
    index = faiss.index_factory(int(dim), spec, faiss.METRIC_L2)
    if index.is_trained:
        return 0
    ivf = _ivf(index)
    inner = ivf if ivf is not None else faiss.downcast_index(index.index) \
        if isinstance(index, faiss.IndexPreTransform) else index
    centroids = ivf.nlist if ivf is not None else 1
    pq = getattr(inner, "pq", None)
    if pq is not None:  # the product quantizer's codebooks: ksub centroids each
        centroids = max(centroids, int(pq.ksub))
    elif ivf is None and not isinstance(inner, faiss.IndexScalarQuantizer):
        centroids = max(centroids, 256)  # some other trained kind: assume a byte-sized codebook
    if isinstance(index, faiss.IndexPreTransform) and "OPQ" in spec:
        centroids = max(centroids, 256)  # OPQ trains its own 8-bit product quantizer
    return TRAIN_POINTS_PER_CELL * centroids


def resolve(requested: str, n: int, dim: int) -> tuple[str, str | None]:
    """The kind to build for `n` vectors and, when it is not the one asked for, why."""
    if requested == AUTO:
        return auto_kind(n, dim), None
    needed = training_minimum(requested, dim)
    if n < needed:
        return EXACT, f"{requested} needs {needed} vectors to train, the store holds {n}: exact until then"
    return requested, None


def needs_rebuild(record: KindRecord | None, requested: str, n: int, dim: int) -> bool:
    """Whether a store built as `record` should be built again for `requested` at size n: another kind
    asked for, or the size moved so far (4x) that `auto` or the trained cells no longer fit."""
    if record is None:
        return resolve(requested, n, dim)[0] != EXACT
    if record.requested != requested:
        return True
    wanted, _ = resolve(requested, n, dim)
    if wanted == record.kind and wanted == EXACT:
        return False
    if (wanted == EXACT) != (record.kind == EXACT) or _family(wanted) != _family(record.kind):
        return True
    if wanted != EXACT and record.trained_on and not record.trained_on / 4 <= n <= record.trained_on * 4:
        return True
    return False


def _family(spec: str) -> str:
    return "exact" if spec == EXACT else "pq" if "PQ" in spec else "ivf" if "IVF" in spec else spec


# -- FAISS structures -------------------------------------------------------------------------------------
def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The inverted-file index inside `index` (through a pre-transform such as OPQ), or None."""
    return _ivf(index)


def hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    """The HNSW graph index inside `index` (through IDMap2), or None."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def with_flat_quantizer(index: faiss.Index) -> faiss.Index:
    """`index` as FAISS's GPU cloner takes it: an IVF whose coarse quantizer is not flat (HNSW in `auto`'s
    kinds) comes back as a copy whose quantizer is flat over the same centroids; anything else as it is."""
    ivf = _ivf(index)
    if ivf is None or isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexFlat):
        return index
    copy = faiss.clone_index(index)
    inner = faiss.extract_index_ivf(copy)
    flat = faiss.IndexFlatL2(inner.d)
    flat.add(inner.quantizer.reconstruct_n(0, inner.nlist))
    graph = inner.quantizer
    inner.quantizer = flat
    flat.this.disown()  # the copy owns and frees the flat quantizer now (its own_fields is set by the clone)
    graph.this.acquire()  # and Python frees the graph it no longer points to
    return copy


def empty_index(spec: str, dim: int) -> faiss.Index:
    """An untrained index of this kind that keeps external int64 ids (IVF: in its lists; others: IDMap2)."""
    base = faiss.index_factory(int(dim), spec, faiss.METRIC_L2)
    return base if _ivf(base) is not None else faiss.IndexIDMap2(base)


def _cells(spec: str, dim: int) -> int:
    ivf = _ivf(faiss.index_factory(int(dim), spec, faiss.METRIC_L2))
    return ivf.nlist if ivf is not None else 0


def _sample(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    if len(vectors) <= count:
        return vectors
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), count, replace=False))
    return vectors[rows]


def build(spec: str, dim: int, training: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> faiss.Index:
    """An index of kind `spec` trained on `training` (a sample of the vectors), filled from (vectors, ids) chunks."""
    index = empty_index(spec, dim)
    if not index.is_trained:
        ivf = _ivf(index)
        if ivf is not None:
            ivf.cp.niter = 10  # k-means iterations: 10 reach almost the cells of 25 at 40% of the cost
        cells = max(ivf.nlist if ivf is not None else 0, 256)
        training = _sample(training, TRAIN_SAMPLE_PER_CELL * cells, seed=0)
        index.train(np.ascontiguousarray(training, dtype=np.float32))
    del training  # a caller that passed its sample on (nothing else holds it) gets its memory back for the add
    for vectors, ids in chunks:
        for start in range(0, len(vectors), ADD_CHUNK):
            index.add_with_ids(np.ascontiguousarray(vectors[start:start + ADD_CHUNK], dtype=np.float32),
                               np.ascontiguousarray(ids[start:start + ADD_CHUNK], dtype=np.int64))
    return index


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The external ids an index holds (IDMap2: in insertion order; IVF: list by list)."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = _ivf(index)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
             for n in range(ivf.nlist) if lists.list_size(n)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def stored_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ids) an index holds, in the order of `stored_ids`; compressed kinds (PQ) give their
    decoded approximations."""
    dim = index.d
    if isinstance(index, faiss.IndexIDMap2):
        n = int(index.ntotal)
        vectors = index.index.reconstruct_n(0, n) if n else np.zeros((0, dim), np.float32)
        return vectors, stored_ids(index)
    ivf = _ivf(index)
    lists = ivf.invlists
    coarse = ivf.coarse_code_size()
    vectors, ids = [], []
    for n in range(ivf.nlist):
        size = lists.list_size(n)
        if not size:
            continue
        ids.append(faiss.rev_swig_ptr(lists.get_ids(n), size).copy())
        codes = faiss.rev_swig_ptr(lists.get_codes(n), size * lists.code_size).copy().reshape(size, -1)
        prefix = np.frombuffer(int(n).to_bytes(8, "little"), np.uint8)[:coarse]
        packed = np.concatenate([np.broadcast_to(prefix, (size, coarse)), codes], axis=1)
        vectors.append(ivf.sa_decode(np.ascontiguousarray(packed)))
    if not ids:
        return np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
    decoded = np.concatenate(vectors)
    if isinstance(index, faiss.IndexPreTransform):
        decoded = _reverse_transform(index, decoded)
    return decoded.astype(np.float32), np.concatenate(ids).astype(np.int64)


def _reverse_transform(index: faiss.IndexPreTransform, vectors: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    for step in reversed(range(index.chain.size())):
        out = faiss.downcast_VectorTransform(index.chain.at(step)).reverse_transform(out)
    return out


def set_search_depth(index: faiss.Index, record: KindRecord) -> None:
    """Apply the record's nprobe / efSearch to a (loaded) index."""
    ivf = _ivf(index)
    if ivf is not None and record.nprobe:
        ivf.nprobe = min(record.nprobe, ivf.nlist)
    hnsw = hnsw_of(index)
    if hnsw is not None and record.ef_search:
        hnsw.hnsw.efSearch = record.ef_search


def search_parameters(index: faiss.Index, selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
    """Parameters that keep the index's search depth while filtering ids with `selector`."""
    if selector is None:
        return None
    ivf = _ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
    hnsw = hnsw_of(index)
    if hnsw is not None:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=hnsw.hnsw.efSearch)
    return faiss.SearchParameters(sel=selector)


# -- recall -----------------------------------------------------------------------------------------------
def exact_neighbours(queries: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                     k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact squared L2 distances and ids of the k nearest, over vectors given in (vectors, ids) chunks (one
    block in memory at a time: FAISS contrib's ground truth); FLT_MAX and -1 where fewer than k exist."""
    ids_seen: list[np.ndarray] = []

    def blocks() -> Iterator[np.ndarray]:
        for vectors, ids in chunks:
            for start in range(0, len(vectors), ADD_CHUNK):
                ids_seen.append(np.asarray(ids[start:start + ADD_CHUNK], dtype=np.int64))
                yield np.ascontiguousarray(vectors[start:start + ADD_CHUNK], dtype=np.float32)

    # on the CPU: the same distances wherever it runs
    distances, positions = knn_ground_truth(np.ascontiguousarray(queries, dtype=np.float32), blocks(), k, ngpu=0)
    ids = np.concatenate(ids_seen) if ids_seen else np.full(1, -1, np.int64)
    return distances, np.where(positions >= 0, ids[np.clip(positions, 0, len(ids) - 1)], -1)


def recall(exact_distances: np.ndarray, found_distances: np.ndarray, k: int) -> float:
    """Share of the exact k nearest that a search found, judged by distance so that ties count either way:
    a found neighbour counts when it is no farther than the exact k-th one. `found_distances` must be the
    found neighbours' true distances (not a compressed kind's estimates), squared like `exact_distances`."""
    exact_distances, found_distances = exact_distances[:, :k], found_distances[:, :k]
    if exact_distances.size == 0:
        return 1.0
    bound = exact_distances[:, -1:] * (1 + 1e-4) + 1e-6
    hits = np.minimum((found_distances <= bound).sum(axis=1), np.isfinite(exact_distances).sum(axis=1))
    return float(hits.sum() / max(np.isfinite(exact_distances).sum(), 1))


def true_distances(queries: np.ndarray, found: np.ndarray, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Exact squared distances from each query to the vectors whose ids a search found (inf for -1)."""
    order = np.argsort(ids, kind="stable")
    rows = order[np.clip(np.searchsorted(ids[order], found), 0, len(ids) - 1)]
    valid = (found >= 0) & (ids[rows] == found)
    squared = ((vectors[rows] - queries[:, None, :]) ** 2).sum(axis=2)
    return np.where(valid, squared, np.inf).astype(np.float32)


@dataclass
class RecallProbe:
    """Queries with their exact neighbours among the vectors searched (a query's own id is left out)."""

    queries: np.ndarray
    query_ids: np.ndarray
    exact: np.ndarray  # (Q, k) squared distances, the query itself left out
    vectors: np.ndarray  # the store's vectors and ids, to measure found neighbours' true distances
    ids: np.ndarray

    @classmethod
    def of(cls, queries: np.ndarray, query_ids: np.ndarray, vectors: np.ndarray, ids: np.ndarray,
           k: int = RECALL_K) -> "RecallProbe":
        """Queries (with their ids, left out of their own answers) against the vectors searched."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        distances, found = exact_neighbours(queries, [(vectors, ids)], k + 1)
        return cls(queries, np.asarray(query_ids), _leave_self_out(distances, found, np.asarray(query_ids), k),
                   vectors, np.asarray(ids))

    def measure(self, index: faiss.Index, k: int = RECALL_K) -> tuple[float, float]:
        """recall@1 and recall@k of `index` on these queries."""
        _, found = index.search(self.queries, k + 1)
        distances = true_distances(self.queries, found, self.vectors, self.ids)
        order = np.argsort(distances, axis=1, kind="stable")  # true order, not a compressed kind's estimate
        found, distances = np.take_along_axis(found, order, 1), np.take_along_axis(distances, order, 1)
        own = _leave_self_out(distances, found, self.query_ids, k)
        return recall(self.exact, own, 1), recall(self.exact, own, k)


def _leave_self_out(distances: np.ndarray, found: np.ndarray, own_ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's distances without the query's own id, first k (inf-padded)."""
    keep = found != own_ids[:, None]
    out = np.full((len(distances), k), np.inf, np.float32)
    for row in range(len(distances)):
        values = distances[row][keep[row]][:k]
        out[row, :len(values)] = values
    return out


def tune(index: faiss.Index, probe: RecallProbe, target: float = RECALL_TARGET) -> KindRecord:
    """Grow the index's search depth (IVF nprobe, HNSW efSearch) until the probe's recall@1 reaches `target`
    (or the depth is exhausted); a record with the depth and the recall reached."""
    record = KindRecord(requested="", kind="")
    ivf, hnsw = _ivf(index), hnsw_of(index)
    if ivf is not None:
        # from MIN_NPROBE up: a held-out sample of the store can look easier than new parts (near-copies in the
        # store), so the tuning never trusts a single list
        depths = [d for d in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if MIN_NPROBE <= d < ivf.nlist] + [ivf.nlist]
        for depth in depths:
            ivf.nprobe = depth
            record.recall_at_1, record.recall_at_10 = probe.measure(index)
            if record.recall_at_1 >= target:
                break
        record.nprobe = int(ivf.nprobe)
    elif hnsw is not None:
        for depth in (16, 32, 64, 128, 256, 512):
            hnsw.hnsw.efSearch = depth
            record.recall_at_1, record.recall_at_10 = probe.measure(index)
            if record.recall_at_1 >= target:
                break
        record.ef_search = int(hnsw.hnsw.efSearch)
    else:
        record.recall_at_1, record.recall_at_10 = probe.measure(index)
    record.recall_queries = len(probe.queries)
    return record


def build_store_index(requested: str, vectors: np.ndarray, ids: np.ndarray,
                      target: float = RECALL_TARGET) -> tuple[faiss.Index, KindRecord]:
    """The index of kind `requested` (or auto's choice) for these vectors, trained on them, its search depth
    tuned for recall, and the record of what was built."""
    dim = vectors.shape[1]
    spec, note = resolve(requested, len(vectors), dim)
    if spec == EXACT:
        index = build(spec, dim, vectors, [(vectors, ids)])
        return index, KindRecord(requested, spec, len(vectors), recall_at_1=1.0, recall_at_10=1.0, note=note)
    # A held-out sample: built without it, tuned on it as queries (as new parts' vectors are: not in the
    # index), then added, so the index holds every vector.
    held = np.zeros(len(vectors), dtype=bool)
    held[np.random.default_rng(0).choice(len(vectors), min(RECALL_QUERIES, len(vectors) // 10), replace=False)] = True

    def kept():  # chunk by chunk: no second copy of a large store
        for start in range(0, len(vectors), ADD_CHUNK):
            keep = ~held[start:start + ADD_CHUNK]
            yield vectors[start:start + ADD_CHUNK][keep], ids[start:start + ADD_CHUNK][keep]

    index = build(spec, dim, _sample(vectors, TRAIN_SAMPLE_PER_CELL * max(_cells(spec, dim), 256), seed=0), kept())
    queries, query_ids = vectors[held], ids[held]
    exact, found = exact_neighbours(queries, kept(), RECALL_K + 1)
    probe = RecallProbe(np.ascontiguousarray(queries), query_ids, _leave_self_out(exact, found, query_ids, RECALL_K),
                        vectors, ids)
    record = tune(index, probe, target)
    index.add_with_ids(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(query_ids))
    record.requested, record.kind, record.trained_on, record.note = requested, spec, len(vectors), note
    return index, record


def iter_chunks(vectors: np.ndarray, ids: np.ndarray, size: int = ADD_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(vectors), size):
        yield vectors[start:start + size], ids[start:start + size]


def describe_record(record: KindRecord | None) -> str:
    """One line for `info`: the kind, its search depth and recall."""
    if record is None or record.kind == EXACT and record.note is None:
        return "exact (Flat)" + (" [auto]" if record is not None and record.requested == AUTO else "")
    parts = [record.kind if record.kind != EXACT else "exact (Flat)"]
    if record.requested == AUTO:
        parts.append("[auto]")
    if record.nprobe:
        parts.append(f"nprobe {record.nprobe}")
    if record.ef_search:
        parts.append(f"efSearch {record.ef_search}")
    if record.recall_at_1 is not None and record.kind != EXACT:
        parts.append(f"recall@1 {record.recall_at_1:.3f}, recall@10 {record.recall_at_10:.3f} "
                     f"({record.recall_queries} held-out vectors)")
    if record.note:
        parts.append(f"({record.note})")
    return " ".join(parts)


__all__ = ["AUTO", "AUTO_EXACT_MAX", "AUTO_PQ_MIN", "EXACT", "KindRecord", "RECALL_TARGET", "ROLES", "RecallProbe",
           "auto_kind", "build", "build_store_index", "check_kind", "describe_record", "empty_index",
           "exact_neighbours", "hnsw_of", "iter_chunks", "ivf_of", "needs_rebuild", "parse_kinds", "recall", "resolve",
           "search_parameters", "set_search_depth", "stored_ids", "stored_vectors", "training_minimum",
           "true_distances", "tune"]
