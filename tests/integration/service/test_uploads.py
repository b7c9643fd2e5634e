"""Uploads that cost memory or carry odd text: a large 16-bit image is reduced on decode and answered in
its own frame, an animated GIF is scored on its first frame with a note, defect types are limited."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from simsearch.data.datasets import MAX_NAME_LENGTH
from simsearch.data.images import DECODE_MAX_SIDE
from tests.integration.service.conftest import png_bytes


def test_large_sixteen_bit_upload_is_scored_in_its_own_frame(client, images, monkeypatch):
    batcher = client.app.state.service.batcher
    submitted = []
    real_submit = batcher.submit

    async def recording_submit(request):
        submitted.append(request.pixels.shape)
        return await real_submit(request)

    monkeypatch.setattr(batcher, "submit", recording_submit)
    part = images["defect"].astype(np.uint16) * 256  # 16-bit gray, 20x larger than the decode limit side
    big = np.kron(part[..., 0], np.ones((36, 36), dtype=np.uint16))
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    response = client.post("/score", files={"image": ("big16.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    height, width = big.shape
    assert max(submitted[0][:2]) <= DECODE_MAX_SIDE < max(height, width)  # reduced on decode
    for box in response.json()["boxes"]:  # boxes in the uploaded image's pixels, not the reduced frame
        assert 0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height


def test_animated_upload_scores_the_first_frame_with_a_note(client, images):
    frames = [Image.fromarray(images["good"]), Image.fromarray(images["defect"])]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    response = client.post("/score", files={"image": ("anim.gif", buffer.getvalue(), "image/gif")})
    assert response.status_code == 200, response.text
    assert "only the first is scored" in response.json()["notes"][0]


def test_defect_types_are_limited_over_http(client, images):
    upload = {"image": ("d.png", png_bytes(images["defect"]), "image/png")}
    for bad in ("x" * (MAX_NAME_LENGTH + 1), "a\x00b"):
        response = client.post("/exemplars", files=upload, data={"label": "defect", "type": bad})
        assert response.status_code == 422, response.text
        assert response.json()["parameter"] == "type" and len(response.text) < 500
    assert client.post("/exemplars", files=upload, data={"label": "defect", "type": "[/]"}).status_code == 200
