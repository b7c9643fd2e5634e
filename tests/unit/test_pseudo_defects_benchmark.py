"""The pseudo-defect benchmark's generator (issue 26): seeded, and it reads only the files it is given."""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

SPEC = importlib.util.spec_from_file_location("pseudo_defects",
                                              Path(__file__).resolve().parents[2] / "benchmarks" / "pseudo_defects.py")
pseudo = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(pseudo)


def _goods(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(1)
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_pseudo_defects_are_seeded_and_made_from_the_given_goods_only(tmp_path, monkeypatch):
    train = _goods(tmp_path / "train", 6)
    test = _goods(tmp_path / "test", 3)
    from simsearch.data import images

    read = []
    original = images.read_image
    monkeypatch.setattr(images, "read_image", lambda path, *a, **k: read.append(str(path)) or original(path, *a, **k))
    sources, made = pseudo.pseudo_defects(train, seed=7)
    assert sources == [str(p) for p in train] and read == [str(p) for p in train]
    assert not set(read) & {str(p) for p in test}
    again = pseudo.pseudo_defects(train, seed=7)[1]
    assert all(np.array_equal(a, b) for a, b in zip(made, again))
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in train]
    assert all(m.shape == o.shape and not np.array_equal(m, o) for m, o in zip(made, originals))
    other = pseudo.pseudo_defects(train, seed=8)[1]
    assert not all(np.array_equal(a, b) for a, b in zip(made, other))
