"""PATCH /exemplars/{id}: relabel an exemplar through the service's locked add path (issue 28, item 9)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from simsearch.index import ExemplarIndex
from tests.conftest import part_image
from tests.integration.service.conftest import TOKEN, make_client


@pytest.fixture
def file_index(small_embedder, tmp_path):
    """(inspector, folder) whose exemplars are files (6 good, 1 defect), as `simsearch build-index` makes."""
    from simsearch.inspector import Inspector

    rng = np.random.default_rng(3)
    parts = tmp_path / "parts"
    parts.mkdir()
    paths = []
    for n in range(7):
        paths.append(parts / f"{n}.png")
        Image.fromarray(part_image(rng, defect=n == 6)).save(paths[-1])
    inspector = Inspector(small_embedder).fit(paths[:6])
    inspector.add(paths[6:], "defect", defect_type="spot")
    folder = tmp_path / "index"
    inspector.save(folder)
    return inspector, folder, paths


def test_patch_relabels_through_the_locked_add_path(file_index):
    inspector, folder, paths = file_index
    with make_client((inspector, folder), token=TOKEN) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        held = {e.path: e for e in ExemplarIndex.load(folder).exemplars.values()}
        good = held[str(paths[0])]
        answer = client.patch(f"/exemplars/{good.id}", json={"label": "defect", "type": "dent"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["old"]["id"] == good.id and body["id"] == body["new"]["id"] != good.id
        on_disk = ExemplarIndex.load(folder)
        assert good.id not in on_disk.exemplars and on_disk.exemplars[body["id"]].defect_type == "dent"
        assert on_disk.counts()["good"] == 5 and on_disk.defect_types() == {"spot": 1, "dent": 1}
        assert client.get(f"/exemplars/{good.id}").status_code == 404
        assert client.get("/info").json()["counts"]["defect"] == 2

        defect = held[str(paths[6])]
        back = client.patch(f"/exemplars/{defect.id}", json={"label": "good"})
        assert back.status_code == 200 and back.json()["new"]["label"] == "good"
        assert client.patch("/exemplars/999", json={"label": "good"}).status_code == 404
        paths[1].unlink()
        gone = client.patch(f"/exemplars/{held[str(paths[1])].id}", json={"label": "defect"})
        assert gone.status_code == 422 and "is not there" in gone.json()["detail"]
        assert client.patch(f"/exemplars/{body['id']}", json={"label": "good", "type": "x"}).status_code == 422
