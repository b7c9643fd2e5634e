"""Options and arguments shared by several commands, declared once (a command's own options stay with it)."""

from __future__ import annotations

from typing import Optional

import typer

from simsearch.runtime import DEFAULT_BATCH_SIZE

BATCH_HELP = "Images embedded at a time (lower it when memory runs out)."
DEVICE_HELP = "cpu or cuda (default: cuda when available)."

# --- the index, its files, the weights

IndexOption = typer.Option(None, "--index", "-i", help="Index folder (default: artifacts/index, said on stderr).")
# add, remove and info once took the index as their first argument: that form still works
WriterIndexOption = typer.Option(None, "--index", "-i", help="Index folder (or, as before, the first argument).")
IndexArgument = typer.Argument(None, help="Index folder (or --index; default artifacts/index).")
DataRootOption = typer.Option(None, "--data-root", help="The folder that now holds the exemplars' image files, "
                              "where they moved elsewhere than with the index (found without it where they did "
                              "not move, or moved with the index).")
ModelOption = typer.Option(None, "--model", help="A saved model folder (a baseline from `train-baseline`, or an "
                                                 "index) instead of --index.")
WeightsOption = typer.Option(None, "--weights", help="Backbone state-dict file (e.g. ../shared/weights/...pth).")
BackboneWeightsOption = typer.Option(None, "--weights", help="Backbone state-dict file.")


def checked_wait(wait: Optional[float]) -> Optional[float]:
    """--wait refused before any work: nan waited for ever, a negative or infinite wait means nothing."""
    from simsearch.index.lock import check_wait
    if wait is None:
        return None
    try:
        return check_wait(wait)
    except ValueError:
        raise typer.BadParameter(f"{wait} is not a number of seconds >= 0 (e.g. 60; 0: do not wait)") from None


WaitOption = typer.Option(None, "--wait", callback=checked_wait,
                          help="Seconds to wait while another writer changes the index (default 60).")

# --- what is read, and where it runs

FoldOption = typer.Option(None, "--fold", help="Use one stratified part of the set, I/N (e.g. 1/2 to calibrate, "
                                                 "2/2 to evaluate).")
AspectOption = typer.Option("keep", "--aspect", help="keep: the images' aspect ratio (--image-size is the short "
                            "side; 1024x768 pictures run at 224x304); square: squash them to --image-size.")
BatchSizeOption = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help=BATCH_HELP)
IndexBatchSizeOption = typer.Option(None, "--batch-size", help=BATCH_HELP)  # default: the index's runtime
DeviceOption = typer.Option(None, "--device", help=DEVICE_HELP)
EngineOption = typer.Option("local", "--engine", help="local (this process) or ray (a pool of Ray actors: see "
                                                    "docs/ray.md; needs simsearch's `ray` extra).")
AddressOption = typer.Option(None, "--address", help="With --engine ray: the Ray cluster to join (HEAD:6379 "
                                                     "or auto); none starts a local Ray.")
WorkersOption = typer.Option(None, "--workers", help="With --engine ray: actors holding the model (default: one "
                                                     "per GPU, else one per CPU of the cluster).")

# --- output

JsonOption = typer.Option(False, "--json", help="One JSON object per line, for machines.")
JsonObjectOption = typer.Option(False, "--json", help="One JSON object, for machines.")
JsonResultOption = typer.Option(False, "--json", help="Print the result as one JSON object.")

# --- baselines (compare, train-baseline)

LabelledDataArgument = typer.Argument(..., help="Labelled folder (good/defect), labels CSV, or MVTec category.")
NoPretrainedOption = typer.Option(False, "--no-pretrained", help="Random weights (tests only).")
CnnImageSizeOption = typer.Option(128, "--cnn-image-size", help="Image size for the small CNN.")
CamLrOption = typer.Option(1e-4, "--lr", help="Adam learning rate for CAM.")
CnnLrOption = typer.Option(1e-3, "--cnn-lr", help="Adam learning rate for the small CNN.")
ProbeBackbonesOption = typer.Option(None, "--probe-backbones",
                                    help="Comma-separated torchvision backbones for the probe.")

# --- metric learning (train triplet-ae, train triplet-head)

TrainingDataArgument = typer.Argument(..., help="Labelled folder (good/ and defect/, types as defect/TYPE/) or a "
                                      "CSV of path,label,type.")
EpochsOption = typer.Option(10, "--epochs", help="Training epochs (in total, when resuming).")
LrOption = typer.Option(1e-3, "--lr", help="Adam learning rate.")
TripletBatchOption = typer.Option(32, "--batch-size", help="Images per class-balanced batch.")
SaveOption = typer.Option(5, "--save-interval", help="Write a checkpoint every this many epochs (and at the end).")
ResumeOption = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.")
MinerOption = typer.Option("batch-hard", "--miner", help="Triplet miner: batch-hard, semi-hard or all.")
MarginOption = typer.Option(0.2, "--margin", help="Triplet margin (embeddings have unit length).")
ValOption = typer.Option(0.1, "--val-fraction", help="Stratified fraction held out for the validation loss.")
PatienceOption = typer.Option(None, "--patience", help="Stop after this many epochs without a lower validation loss "
                              "(default: run every epoch; model.pt is the best epoch either way).")
SeedOption = typer.Option(0, "--seed", help="Seed of the split, batches, augmentation and initial weights.")
RoiOption = typer.Option("none", "--roi", help="none, or hough: crop each image to its circular part first.")
