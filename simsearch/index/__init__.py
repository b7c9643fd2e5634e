"""Vectors -> index: exemplars in FAISS with a SQLite catalogue, saved atomically."""

from simsearch.index.catalogue import Exemplar
from simsearch.index.coreset import greedy_coreset, greedy_coreset_reference
from simsearch.index.exemplar_index import ExemplarIndex, IndexMismatchError, NewExemplar
from simsearch.index.lock import DEFAULT_WAIT, IndexLock
from simsearch.index.persist import update_index
from simsearch.index.roles import Role
from simsearch.index.storage import StorageError
from simsearch.index.vectors import VectorStore, gpu_count

__all__ = ["DEFAULT_WAIT", "Exemplar", "ExemplarIndex", "IndexLock", "IndexMismatchError", "NewExemplar", "Role",
           "StorageError", "VectorStore", "gpu_count", "greedy_coreset", "greedy_coreset_reference", "update_index"]
