"""Training: one step lowers the loss, checkpoints round-trip, runs resume, the split is stratified."""

import numpy as np
import pytest
import torch

from simsearch.data.datasets import Sample
from simsearch.data.images import read_image
from simsearch.embed import create_embedder, embedder_from_config
from simsearch.embed.checkpoint import read_checkpoint
from simsearch.embed.triplet_ae import AutoencoderConfig
from simsearch.embed.triplet_head import ProjectionHead
from simsearch.errors import TrainingError
from simsearch.train.loop import TrainSettings
from simsearch.train.tasks.common import TripletObjective, TripletOptions
from simsearch.train.tasks.triplet_ae import AutoencoderTask, train_triplet_ae
from tests.conftest import part_image

TINY = AutoencoderConfig(image_size=32, embedding_dim=8, channels=1, widths=[8, 16, 16, 16])


def _toy_vectors(seed=0):
    rng = np.random.default_rng(seed)
    good = rng.normal(0, 1, (16, 10))
    defect = rng.normal(0, 1, (16, 10)) + 0.5
    return torch.tensor(np.vstack([good, defect]), dtype=torch.float32), torch.tensor([0] * 16 + [1] * 16)


# triplets mined from 16 goods and 16 defects: batch-hard one per anchor, all every valid (anchor, positive,
# negative), semi-hard those in the margin band (data-dependent: some, not all)
@pytest.mark.parametrize("miner, triplet_count", [("batch-hard", 32), ("semi-hard", None), ("all", 32 * 15 * 16)])
def test_one_step_lowers_the_triplet_loss(miner, triplet_count):
    torch.manual_seed(0)
    vectors, labels = _toy_vectors()
    head = ProjectionHead(10, embedding_dim=4, hidden_dim=16)
    objective = TripletObjective(TripletOptions(miner=miner, margin=0.5))
    triplets = objective.miner(head(vectors), labels)  # scored on the same triplets before and after the step
    before = objective.loss(head(vectors), labels, triplets)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    if triplet_count is None:
        assert 0 < len(triplets[0]) < 32 * 15 * 16
    else:
        assert len(triplets[0]) == triplet_count
    assert before.item() > 0
    assert objective.loss(head(vectors), labels, triplets).item() < before.item()


def _samples(tmp_path, good=10, defect=6):
    from PIL import Image
    rng = np.random.default_rng(0)
    samples = []
    for label, count in (("good", good), ("defect", defect)):
        for i in range(count):
            path = tmp_path / f"{label}{i}.png"
            Image.fromarray(part_image(rng, size=40, defect=label == "defect")).save(path)
            samples.append(Sample(path, label, "spot" if label == "defect" else None))
    return samples


def test_one_autoencoder_step_lowers_its_loss(tmp_path):
    samples = _samples(tmp_path)
    pixels = [TINY.prepare(read_image(s.path)) for s in samples]
    task = AutoencoderTask(TINY, TrainSettings(batch_size=8, device="cpu"), samples, pixels, [], [])
    task.augment = None  # the same batch before and after the step
    batch = task.train_batches(0)[0]
    batch.augment = None
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    task.model.train()
    before = task.losses(batch)["loss"]
    before.backward()
    optimizer.step()
    assert task.losses(batch)["loss"].item() < before.item()


def test_checkpoint_round_trips_and_fingerprint_follows_the_weights(tmp_path):
    samples = _samples(tmp_path)
    settings = TrainSettings(epochs=1, batch_size=8, val_fraction=0.25, device="cpu")
    result = train_triplet_ae(samples, tmp_path / "run", TINY, settings)
    state = read_checkpoint(result.model_path, kind="triplet-ae")
    assert state["epoch"] == 1 and set(state["history"][0]) >= {"train_loss", "val_loss", "train_triplet"}
    images = [part_image(np.random.default_rng(5), size=40) for _ in range(3)]
    embedder = create_embedder(f"triplet-ae:{result.model_path}", device="cpu")
    model = TINY.build()
    model.load_state_dict(state["model"])
    model.eval()
    with torch.no_grad():
        direct = model.encode(torch.stack([TINY.prepare(i) for i in images])).numpy()
    vectors = embedder.embed(images).image
    assert vectors.shape == (3, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    again = embedder_from_config(embedder.config)
    assert again.fingerprint == embedder.fingerprint
    np.testing.assert_allclose(again.embed(images).image, vectors, atol=1e-6)
    retrained = train_triplet_ae(samples, tmp_path / "run2", TINY, TrainSettings(epochs=1, batch_size=8, seed=1,
                                                                                  device="cpu"))
    assert create_embedder(f"triplet-ae:{retrained.model_path}").fingerprint != embedder.fingerprint
    assert (tmp_path / "run" / "history.csv").read_text().startswith("epoch,")
    assert (tmp_path / "run" / "loss_curves.png").stat().st_size > 1000


def test_resume_continues_and_an_existing_run_is_not_overwritten(tmp_path):
    samples = _samples(tmp_path)
    settings = TrainSettings(epochs=1, batch_size=8, val_fraction=0, save_interval=1, device="cpu")
    train_triplet_ae(samples, tmp_path / "run", TINY, settings)
    with pytest.raises(TrainingError, match="already holds a training run") as refused:
        train_triplet_ae(samples, tmp_path / "run", TINY, settings)
    assert refused.value.parameter == "resume"
    settings.epochs = 2
    result = train_triplet_ae(samples, tmp_path / "run", TINY, settings, resume=True)
    assert result.epochs_run == 1 and [row["epoch"] for row in result.history] == [1, 2]
    assert (tmp_path / "run" / "epoch-0002.pt").is_file()
    other = AutoencoderConfig(**{**TINY.__dict__, "embedding_dim": 4})
    settings.epochs = 3
    with pytest.raises(TrainingError, match="other model settings"):
        train_triplet_ae(samples, tmp_path / "run", other, settings, resume=True)
