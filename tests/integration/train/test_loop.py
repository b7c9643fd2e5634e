"""The one training loop: model.pt is the epoch with the lowest validation loss; patience stops; resume works."""

import pytest
import torch
from torch import nn

from simsearch.embed.checkpoint import read_checkpoint
from simsearch.train.loop import TrainSettings, run_training

VAL = [5.0, 2.0, 1.0, 3.0, 4.0, 6.0]  # validation loss by epoch: best at epoch 3


class ScriptedTask:
    """A one-weight model whose validation loss is read from VAL (by the epoch the weight counts)."""

    kind = "scripted"

    def __init__(self):
        self.model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(self.model.weight)

    def config(self):
        return {"scripted": 1}

    def train_batches(self, epoch):
        return [epoch]

    def val_batches(self):
        return ["val"]

    def losses(self, batch):
        if batch == "val":  # the weight grows by 1 per epoch: it says which epoch this is
            epoch = int(round(float(self.model.weight.detach())))
            return {"loss": torch.tensor(VAL[epoch - 1])}
        return {"loss": -self.model.weight.sum()}  # with lr 1 Adam steps the weight by ~1 per epoch


def _weight(path):
    return float(read_checkpoint(path, kind="scripted")["model"]["weight"])


def test_model_pt_is_the_lowest_validation_epoch_and_patience_stops(tmp_path):
    result = run_training(ScriptedTask(), TrainSettings(epochs=6, lr=1.0, save_interval=10), tmp_path / "a")
    assert result.best_epoch == 3 and round(_weight(result.model_path)) == 3 and len(result.history) == 6
    stopped = run_training(ScriptedTask(), TrainSettings(epochs=6, lr=1.0, patience=2, save_interval=10),
                           tmp_path / "b")
    assert stopped.best_epoch == 3 and [row["epoch"] for row in stopped.history] == [1, 2, 3, 4, 5]
    assert round(_weight(stopped.model_path)) == 3


def test_resume_keeps_the_best_epoch_from_before_the_resume(tmp_path):
    run_training(ScriptedTask(), TrainSettings(epochs=4, lr=1.0, save_interval=1), tmp_path)
    task = ScriptedTask()
    result = run_training(task, TrainSettings(epochs=6, lr=1.0, save_interval=1), tmp_path, resume=True)
    assert result.epochs_run == 2 and [row["epoch"] for row in result.history] == list(range(1, 7))
    assert result.best_epoch == 3 and round(_weight(result.model_path)) == 3
    assert round(float(task.model.weight.detach())) == 3  # the task's model ends holding the best weights too


def test_without_a_folder_nothing_is_written_and_resume_is_refused(tmp_path):
    result = run_training(ScriptedTask(), TrainSettings(epochs=2, lr=1.0))
    assert result.best_epoch == 2 and not list(tmp_path.iterdir())
    with pytest.raises(Exception, match="folder"):
        run_training(ScriptedTask(), TrainSettings(epochs=2), resume=True)


def test_the_classifier_trains_through_the_loop_with_the_seeds_defaults():
    from simsearch.train.classifier import TrainConfig, train_classifier
    from simsearch.train.tasks.classify import ClassifierOptions, classifier_settings

    settings, config = classifier_settings(), TrainConfig()
    assert (settings.lr, settings.batch_size, settings.val_fraction) == (1e-4, 10, 0.0)
    assert (config.learning_rate, config.batch_size, config.class_weights) == (1e-4, 10, (1.0, 3.0))
    assert ClassifierOptions().target_accuracy == 0.98
    torch.manual_seed(0)
    pixels = torch.rand(20, 3, 8, 8)
    labels = torch.tensor([0, 1] * 10)
    pixels[labels == 1] += 2.0  # separable: the run stops once the training accuracy reaches the target
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 2))
    seen = []
    history = train_classifier(model, pixels, labels, TrainConfig(epochs=30, learning_rate=0.05, augment=False),
                               on_epoch=lambda epoch, loss, accuracy: seen.append(epoch))
    assert set(history[0]) == {"epoch", "loss", "accuracy"} and history[-1]["accuracy"] >= 0.98
    assert len(history) < 30 and seen == [row["epoch"] for row in history] and not model.training
