"""The ray engine's options, without Ray running: a missing Ray is a one-line error with the install command,
the pool is sized from the cluster's resources, and a worker's record becomes the same ScoreResult."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.engines import ray_engine
from simsearch.errors import InputError
from simsearch.score.results import Box, Neighbour, ScoreResult


@pytest.fixture
def without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)


@pytest.mark.parametrize("command", [["build-index", "{folder}/good", "--out", "{folder}/index"],
                                     ["score", "{folder}/good"]])
def test_engine_ray_without_ray_says_how_to_install_it(without_ray, part_folder, command):
    args = [a.format(folder=part_folder) for a in command] + ["--engine", "ray"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "pip install simsearch[ray]" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (part_folder / "index").exists()


def test_ray_options_need_the_ray_engine(part_folder):
    result = CliRunner().invoke(app, ["score", str(part_folder / "good"), "--workers", "2"])
    assert result.exit_code == 2
    assert "--address and --workers are for --engine ray" in result.output
    result = CliRunner().invoke(app, ["score", str(part_folder / "good"), "--engine", "spark"])
    assert result.exit_code == 2 and "--engine must be local or ray" in result.output
    result = CliRunner().invoke(app, ["score", str(part_folder / "good"), "--results-format", "parquet"])
    assert result.exit_code == 2 and "--results-format is for --results" in result.output


@pytest.mark.parametrize("extra, message", [
    (["--model", "{folder}/model"], "--engine ray scores an index (--index); score a --model with the local engine"),
    (["--heatmap", "{folder}/maps"],
     "--heatmap needs the local engine: with --engine ray the maps stay on the workers"),
])
def test_what_the_ray_engine_cannot_score_is_refused_before_any_work(monkeypatch, part_folder, extra, message):
    monkeypatch.setattr(ray_engine, "import_ray", lambda: None)  # as if Ray were installed
    args = ["score", str(part_folder / "good"), "--engine", "ray"] + [a.format(folder=part_folder) for a in extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.output.strip() == f"error: {message}", result.output
    assert not (part_folder / "maps").exists()


def test_pool_is_one_worker_per_gpu_else_per_cpu():
    assert ray_engine._size_pool({"CPU": 8.0}, None, None).workers == 8
    on_gpus = ray_engine._size_pool({"CPU": 32.0, "GPU": 4.0}, None, "auto")
    assert (on_gpus.workers, on_gpus.gpus_per_worker) == (4, 1.0)
    shared = ray_engine._size_pool({"CPU": 32.0, "GPU": 2.0}, 4, "auto")
    assert (shared.workers, shared.gpus_per_worker) == (4, 0.5)
    with pytest.raises(InputError, match="3 workers need 3 CPUs") as raised:
        ray_engine._size_pool({"CPU": 2.0}, 3, None)
    assert raised.value.parameter == "workers"


def test_a_workers_record_becomes_the_same_result():
    from simsearch.inspector import Scored, ScoreJob

    result = ScoreResult("x.png", 1.23456789, [Neighbour(3, "a.png", "good", None, 0.25)],
                         Neighbour(7, "b.png", "defect", "crack", 0.5), 0.7654321, True,
                         boxes=[Box(1, 2, 3, 4, 0.9)], predicted_type="crack", type_evidence={"level": "image"})
    job = ScoreJob.__new__(ScoreJob)  # encode/decode need no model
    rebuilt = job.decode(job.encode(Scored([result], [("y.png", "unreadable")])))
    assert rebuilt.results[0].to_dict() == result.to_dict() and rebuilt.skipped == [("y.png", "unreadable")]
    assert (rebuilt.results[0].score, rebuilt.results[0].normalised_score) == (result.score, result.normalised_score)
    assert ScoreResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_an_address_where_nothing_answers_is_refused_at_once():
    import socket
    with socket.socket() as probe:  # a port that was free a moment ago: connecting is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match=f"cannot join the Ray cluster at 127.0.0.1:{port}: nothing answers"):
        ray_engine.check_reachable(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(InputError, match="is not auto, HOST:PORT or ray://HOST:PORT") as raised:
        ray_engine.check_reachable("head-node")
    assert raised.value.parameter == "address"
    ray_engine.check_reachable("auto")  # left to Ray: it looks for a cluster this node belongs to
