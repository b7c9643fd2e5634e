"""Generations of index files: an unchanged file is kept by a hard link, never trusted blindly."""

import hashlib
import os

from simsearch.index.storage import Unchanged, save_generation


def _first_generation(folder):
    data = b"a compiled model" * 1000
    manifest = save_generation(folder, {"format": "test"}, {"embedder": data})
    return manifest, folder / manifest["files"]["embedder"], data


def test_an_unchanged_file_is_linked_not_rewritten(tmp_path):
    manifest, path, data = _first_generation(tmp_path)
    inode = path.stat().st_ino
    sha = hashlib.sha256(data).hexdigest()
    again = save_generation(tmp_path, manifest, {"embedder": Unchanged(path, data)})
    kept = tmp_path / again["files"]["embedder"]
    assert kept != path and not path.exists()  # the older generation's name is gone
    assert kept.stat().st_ino == inode and kept.read_bytes() == data
    assert again["checksums"]["embedder"] == {"bytes": len(data), "sha256": sha}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_file_changed_since_it_was_read_is_written_from_what_was_read(tmp_path):
    manifest, path, data = _first_generation(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    path.write_bytes(b"planted")  # someone wrote over it after the index was read
    again = save_generation(tmp_path, manifest, {"embedder": Unchanged(path, data)})
    kept = tmp_path / again["files"]["embedder"]
    assert kept.read_bytes() == data and again["checksums"]["embedder"]["sha256"] == sha
    os.remove(kept)  # and a file that is gone is written too
    again = save_generation(tmp_path, again, {"embedder": Unchanged(kept, data)})
    assert (tmp_path / again["files"]["embedder"]).read_bytes() == data
