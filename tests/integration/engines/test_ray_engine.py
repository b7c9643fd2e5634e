"""The Ray executor: Inspector.fit and iter_score on a local Ray cluster of 2 workers, on 300 real ELPV images,
give the index and the scores of the single-process path. Skipped, with the reason, when Ray is not installed or
cannot start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from tests.conftest import ELPV, need_shared

pytest.importorskip("ray", reason="Ray is not installed (pip install simsearch[ray])")

from simsearch.cli.main import app  # noqa: E402
from simsearch.engines import ray_engine  # noqa: E402
from simsearch.errors import InputError  # noqa: E402
from simsearch.inspector import Inspector  # noqa: E402

pytestmark = need_shared(ELPV)

N_GOOD_INDEXED, N_DEFECT_INDEXED, N_GOOD_SCORED, N_DEFECT_SCORED = 100, 10, 120, 70  # 300 images in all


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs and 2 workers, small object store, for the whole module."""
    try:
        with ray_engine.ray_cluster(workers=2, num_cpus=2, object_store_memory=200 * 1024 * 1024) as running:
            yield running
    except InputError as error:
        pytest.skip(f"Ray cannot start here: {error}")


@pytest.fixture(scope="module")
def elpv_split():
    good = sorted((ELPV / "good").glob("*.png"))
    defect = sorted((ELPV / "defect").glob("*.png"))
    return {"index_good": good[:N_GOOD_INDEXED],
            "index_defects": [Sample(p, 1, "crack") for p in defect[:N_DEFECT_INDEXED]],
            "scored": good[N_GOOD_INDEXED:N_GOOD_INDEXED + N_GOOD_SCORED]
            + defect[N_DEFECT_INDEXED:N_DEFECT_INDEXED + N_DEFECT_SCORED]}


@pytest.fixture(scope="module")
def embedder():
    from simsearch.embed.backbone import BackboneEmbedder
    return BackboneEmbedder("resnet18", image_size=96, pretrained=False, device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def single_process(embedder, elpv_split, tmp_path_factory):
    """The index built in this process, saved with its compiled embedder, and the scores of the scored images by
    that index loaded again, as the workers load it (with its compiled embedder, on this CPU)."""
    inspector = Inspector(embedder, mode="patch", k=1, coreset_ratio=0.1).fit(elpv_split["index_good"])
    defects = elpv_split["index_defects"]
    inspector.add([s.path for s in defects], "defect", defect_types=[s.defect_type for s in defects])
    folder = tmp_path_factory.mktemp("ray") / "index"
    inspector.save(folder, compile=True)
    return folder, inspector, Inspector.load(folder).score(elpv_split["scored"])


def test_build_index_on_ray_is_the_single_process_index(cluster, embedder, elpv_split, single_process):
    _, local, _ = single_process
    progress = []
    defects = elpv_split["index_defects"]
    with ray_engine.RayExecutor(cluster) as executor:  # as build-index --engine ray does
        built = Inspector(embedder, mode="patch", k=1, coreset_ratio=0.1).fit(
            elpv_split["index_good"], callbacks=Callbacks(progress=progress.append), executor=executor)
        built.add([s.path for s in defects], "defect", defect_types=[s.defect_type for s in defects],
                  callbacks=Callbacks(progress=progress.append), executor=executor)
    assert sum(progress) == N_GOOD_INDEXED + N_DEFECT_INDEXED
    ours, theirs = built.index_, local.index_
    assert ours.counts() == theirs.counts()
    assert [(e.id, e.path, e.label, e.defect_type, e.sha256) for e in ours.exemplars.values()] == \
        [(e.id, e.path, e.label, e.defect_type, e.sha256) for e in theirs.exemplars.values()]
    assert ours.fingerprint == theirs.fingerprint
    np.testing.assert_allclose(ours.good.vectors(), theirs.good.vectors(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.defect.vectors(), theirs.defect.vectors(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.vectors["patches"].vectors(), theirs.vectors["patches"].vectors(),
                               rtol=1e-4, atol=1e-5)


def test_scores_on_ray_are_the_single_process_scores(cluster, elpv_split, single_process, tmp_path):
    folder, local, expected = single_process
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    files = elpv_split["scored"][:150] + [broken] + elpv_split["scored"][150:]
    skipped = []
    loaded = Inspector.load(folder)
    with ray_engine.RayExecutor(cluster) as executor:
        got = list(loaded.iter_score(files, Callbacks(skip=lambda path, reason: skipped.append(path)),
                                     maps="needed", executor=executor))
    assert skipped == [str(broken)]
    assert [r.path for r in got] == [r.path for r in expected]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], rtol=1e-5, atol=1e-6)
    assert [[n.id for n in r.nearest] for r in got] == [[n.id for n in r.nearest] for r in expected]
    assert [r.nearest_defect.id for r in got] == [r.nearest_defect.id for r in expected]
    assert [r.predicted_type for r in got] == [r.predicted_type for r in expected]


def test_cli_engine_ray_builds_and_scores_like_the_local_engine(cluster, elpv_split, tmp_path):
    runner = CliRunner()
    good = tmp_path / "good"
    good.mkdir()
    for path in elpv_split["index_good"][:24]:
        (good / path.name).symlink_to(path)
    scored = [str(p) for p in elpv_split["scored"][::20]]
    common = ["--no-pretrained", "--image-size", "64", "--coreset-ratio", "0.2", "--batch-size", "8", "--json"]
    for engine in ("local", "ray"):
        extra = ["--engine", "ray", "--workers", "2"] if engine == "ray" else []
        built = runner.invoke(app, ["build-index", str(good), "--out", str(tmp_path / engine), *common, *extra])
        assert built.exit_code == 0, built.output
    local = runner.invoke(app, ["score", *scored, "--index", str(tmp_path / "local"), "--json"])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(app, ["score", *scored, "--index", str(tmp_path / "ray"), "--engine", "ray",
                                 "--workers", "2", "--results", str(tmp_path / "out.parquet"),
                                 "--results-format", "parquet"])
    assert on_ray.exit_code == 0, on_ray.output
    assert f"wrote {len(scored)} result(s)" in on_ray.output
    import pyarrow.parquet as pq
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    records = [json.loads(line) for line in local.output.splitlines()]
    assert [row["path"] for row in table] == [r["path"] for r in records]
    np.testing.assert_allclose([row["score"] for row in table], [r["score"] for r in records], atol=2e-6)
    assert [json.loads(row["nearest"])[0]["id"] for row in table] == [r["nearest"][0]["id"] for r in records]


def test_more_workers_than_cpus_is_refused(cluster):
    with pytest.raises(InputError, match="workers need"):
        with ray_engine.ray_cluster(workers=64):
            pass


def test_a_workers_error_comes_back_as_the_projects_error(cluster, elpv_split, single_process, tmp_path):
    from simsearch.errors import IndexProblem
    folder, _, _ = single_process
    # the workers open the index folder themselves: one they cannot find is the same error as here
    moved = Inspector.load(folder)
    moved.folder_ = tmp_path / "no-index"
    with pytest.raises(IndexProblem), ray_engine.RayExecutor(cluster) as executor:
        list(moved.iter_score(elpv_split["scored"][:4], executor=executor))
