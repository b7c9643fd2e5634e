"""Image AUROC on ELPV of triplet-ae, triplet-head and the plain backbone, each by the CLI commands a user runs.

A stratified train/test split (fixed seed) is laid out as symlinks under artifacts/; each embedder is trained
on the train part, indexes the train part's good images, and is evaluated on the held-out part.
Run from the repository root:
python benchmarks/metric_learning_elpv.py [--data ../shared/data/elpv_subset] [--weights FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from simsearch.data.datasets import discover_samples
from simsearch.data.splits import validation_split


def make_split(data: Path, out: Path, test_fraction: float, seed: int) -> None:
    """out/train and out/test, each with good/ and defect/[type/] symlinks to the original images."""
    train, test = validation_split(discover_samples(data), test_fraction, seed)
    for part, samples in (("train", train), ("test", test)):
        for sample in samples:
            folder = out / part / ("good" if not sample.is_defect else Path("defect") / (sample.defect_type or ""))
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / sample.path.name
            if not link.exists():
                link.symlink_to(sample.path.resolve())  # links, not copies: the data stays where it is


def run(command: list[str], log: list, skip: bool = False) -> dict | None:
    """Run one simsearch command, print it, and return its JSON output (the last line) if any.

    skip=True reuses a finished training run from an earlier invocation (delete its folder to retrain).
    """
    text = "simsearch " + shlex.join(command)
    print(f"$ {text}" + ("  # already done: reusing its output" if skip else ""), flush=True)
    if skip:
        log.append({"command": text, "seconds": None})
        return None
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simsearch.cli.main", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {text}\n{done.stderr}")
    log.append({"command": text, "seconds": round(seconds, 1)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/elpv_subset"))
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/resnet18-imagenet1k-v1-layers1to3.pth"))
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench_elpv"))
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ae-epochs", type=int, default=8)
    parser.add_argument("--head-epochs", type=int, default=40)
    parser.add_argument("--only", nargs="*", default=["backbone-image", "backbone-patch", "triplet-head", "triplet-ae"])
    args = parser.parse_args()

    split, out = args.out / "split", args.out
    make_split(args.data, split, args.test_fraction, args.seed)
    train, test, good = str(split / "train"), str(split / "test"), str(split / "train" / "good")
    weights = str(args.weights)
    log: list = []
    results = {}

    def evaluate(name: str, index: Path, extra: list[str] = ()) -> None:
        report = run(["evaluate", test, "--index", str(index), "--json", *extra], log)
        results[name] = {"image_auroc": report["image_auroc"], "commands": [entry["command"] for entry in log]}
        print(f"{name}: image AUROC {report['image_auroc']:.4f} ({report['good']} good, {report['defect']} defect)",
              flush=True)
        log.clear()

    if "backbone-image" in args.only:
        run(["build-index", good, "--mode", "image", "--backbone", "resnet18", "--weights", weights,
             "--out", str(out / "idx-backbone-image"), "--json"], log)
        evaluate("backbone resnet18, image mode", out / "idx-backbone-image")
    if "backbone-patch" in args.only:
        run(["build-index", good, "--mode", "patch", "--backbone", "resnet18", "--weights", weights,
             "--out", str(out / "idx-backbone-patch"), "--json"], log)
        evaluate("backbone resnet18, patch mode", out / "idx-backbone-patch")
    if "triplet-head" in args.only:
        run(["train", "triplet-head", train, "--weights", weights, "--epochs", str(args.head_epochs),
             "--save-interval", "10", "--views", "2", "--seed", str(args.seed), "--out", str(out / "triplet-head"),
             "--json"], log, skip=(out / "triplet-head" / "model.pt").exists())
        run(["build-index", good, "--mode", "image", "--embedder", f"triplet-head:{out / 'triplet-head' / 'model.pt'}",
             "--out", str(out / "idx-triplet-head"), "--json"], log)
        evaluate("triplet-head on resnet18, image mode", out / "idx-triplet-head")
    if "triplet-ae" in args.only:
        run(["train", "triplet-ae", train, "--grayscale", "--image-size", "128", "--epochs", str(args.ae_epochs),
             "--save-interval", "4", "--seed", str(args.seed), "--out", str(out / "triplet-ae"), "--json"], log,
            skip=(out / "triplet-ae" / "model.pt").exists())
        run(["build-index", good, "--mode", "image", "--embedder", f"triplet-ae:{out / 'triplet-ae' / 'model.pt'}",
             "--out", str(out / "idx-triplet-ae"), "--json"], log)
        evaluate("triplet-ae, image mode", out / "idx-triplet-ae")

    print(json.dumps(results, indent=2))
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "200")
    main()
