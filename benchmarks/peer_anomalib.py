"""simsearch's patch mode against anomalib's PatchCore, in the same run, on the same images and weights.

anomalib 2.7.0 is installed by this script into its own virtualenv (~/.cache/simsearch/peer-anomalib-2.7.0,
once; it reuses this environment's torch through a .pth file, so both sides run the same torch build). Both
sides get ResNet-18 layer2+layer3 with the weights file ../shared/weights/resnet18-imagenet1k-v1-layers1to3.pth,
224 px inputs (the same PIL bilinear resize and ImageNet normalisation), and a 10% greedy coreset; each runs
in its own child process so that its peak RSS is its own. Printed for both: build time (embedding the bank
images and the coreset; simsearch's also saves the index, as build-index does, which makes its compiled
embedder), scoring images/s (decoding included; index and model loaded, after a warm-up; simsearch's index is
loaded from its folder as `simsearch score` and the service load it: on a CPU, with the compiled embedder),
peak memory, image AUROC (computed here by simsearch.evaluate.metrics on both sides' scores), and the ratios.

Sets: MVTec AD bottle (train/good -> test) and ELPV (a seeded split of good/ for the bank; test = the held-out
good plus defects). `--limit` caps the bank images of both, `--test-limit` the ELPV test images of each
class, so that the run takes minutes on a small CPU.

    python benchmarks/peer_anomalib.py [--limit 30] [--test-limit 40] [--sets bottle,elpv] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMSEARCH_SHARED", ROOT.parent / "shared"))  # ../shared, or where this names
BOTTLE = SHARED / "data" / "mvtec_bottle"
ELPV = SHARED / "data" / "elpv_subset"
WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
ANOMALIB_VERSION = "2.7.0"
PEER_VENV = Path.home() / ".cache" / "simsearch" / f"peer-anomalib-{ANOMALIB_VERSION}"
IMAGE_SIZE = 224
CORESET_RATIO = 0.1
BATCH_SIZE = 16
SEED = 0


# -- the sets ------------------------------------------------------------------------------------------------
def bottle_set(limit: int | None) -> dict:
    """Bank: bottle train/good (the first `limit`); test: all of bottle test/, defects labelled 1."""
    bank = sorted((BOTTLE / "train" / "good").glob("*.png"))[:limit]
    test = sorted((BOTTLE / "test").rglob("*.png"))
    return {"name": "mvtec_bottle", "bank": [str(p) for p in bank], "test": [str(p) for p in test],
            "labels": [int(p.parent.name != "good") for p in test]}


def elpv_set(limit: int | None, test_limit: int) -> dict:
    """A seeded split of ELPV good/: `limit` for the bank, `test_limit` held out; plus `test_limit` defects."""
    good = sorted((ELPV / "good").glob("*.png"))
    defects = sorted((ELPV / "defect").glob("*.png"))
    rng = random.Random(SEED)
    rng.shuffle(good)
    held_out = good[:test_limit]
    bank = good[test_limit:][:limit]
    test_defects = sorted(rng.sample(defects, min(test_limit, len(defects))))
    test = sorted(held_out) + test_defects
    return {"name": "elpv", "bank": [str(p) for p in sorted(bank)], "test": [str(p) for p in test],
            "labels": [0] * len(held_out) + [1] * len(test_defects)}


# -- the children ---------------------------------------------------------------------------------------------
def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is in KB on Linux


def run_simsearch(spec: dict) -> dict:
    """simsearch's patch mode as a user runs it: Inspector.fit on the bank and save (build-index; the save makes
    the compiled embedder), then the saved index loaded (on a CPU, its compiled embedder) scores the test images
    (simsearch score, the service)."""
    import tempfile

    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.inspector import Inspector

    start = time.perf_counter()
    embedder = BackboneEmbedder("resnet18", layers=["layer2", "layer3"], image_size=IMAGE_SIZE,
                                weights=spec["weights"], batch_size=BATCH_SIZE, device="cpu")
    load_s = time.perf_counter() - start
    inspector = Inspector(embedder, mode="patch", k=1, coreset_ratio=CORESET_RATIO)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        inspector.fit(spec["bank"])
        fit_s = time.perf_counter() - start
        inspector.save(f"{folder}/index", compile=True)  # as build-index saves it
        build_s = time.perf_counter() - start
        loaded = Inspector.load(f"{folder}/index", device="cpu")
        loaded.score(spec["test"][:2])  # warm-up
        start = time.perf_counter()
        scores = [r.score for r in loaded.score(spec["test"])]
        score_s = time.perf_counter() - start
    return {"load_s": load_s, "fit_s": fit_s, "build_s": build_s, "score_s": score_s,
            "embedder": type(loaded.embedder).__name__, "bank_patches": inspector.index_.counts()["patches"],
            "scores": scores, "peak_gb": peak_gb()}


def run_anomalib(spec: dict) -> dict:
    """anomalib's PatchcoreModel (its torch model: feature extractor, k-centre greedy coreset, nearest-neighbour
    scoring with its re-weighting, anomaly maps), driven without Lightning's Engine so that only the model runs."""
    import numpy as np
    import torch
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    from PIL import Image

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    class Images(torch.utils.data.Dataset):
        """Same input as simsearch: RGB, PIL bilinear resize to 224 on uint8, ImageNet normalisation."""

        def __init__(self, paths: list[str]):
            self.paths = paths

        def __len__(self) -> int:
            return len(self.paths)

        def __getitem__(self, number: int) -> torch.Tensor:
            with Image.open(self.paths[number]) as image:
                pixels = np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
            return (torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0 - mean) / std

    def batches(paths: list[str]):
        # anomalib's datamodules load with DataLoader workers; two match the loader threads on simsearch's side
        return torch.utils.data.DataLoader(Images(paths), batch_size=BATCH_SIZE, num_workers=2)

    start = time.perf_counter()
    model = PatchcoreModel(layers=["layer2", "layer3"], backbone="resnet18", pre_trained=False)
    extractor = model.feature_extractor.feature_extractor
    wanted = extractor.state_dict()
    state = torch.load(spec["weights"], map_location="cpu", weights_only=True)
    missing = [k for k in wanted if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"the weights file lacks {missing[:3]} for anomalib's ResNet-18")
    extractor.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    model.train()
    with torch.no_grad():
        for batch in batches(spec["bank"]):
            model(batch)
        # Under no_grad: with gradients on, its k-centre greedy keeps every step's difference tensor alive
        # (1.3 GB more for 470 picks of 4704 patches, measured), which would not be a fair comparison.
        model.subsample_embedding(CORESET_RATIO)
    build_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        for batch in batches(spec["test"][:2]):  # warm-up
            model(batch)
        start = time.perf_counter()
        scores = [float(s) for batch in batches(spec["test"]) for s in model(batch).pred_score.flatten()]
        score_s = time.perf_counter() - start
    return {"load_s": load_s, "build_s": build_s, "score_s": score_s, "bank_patches": int(model.memory_bank.shape[0]),
            "scores": scores, "peak_gb": peak_gb()}


# -- the peer's environment -----------------------------------------------------------------------------------
def peer_python() -> Path:
    """The peer virtualenv's python, created with anomalib installed on first use."""
    python = PEER_VENV / "bin" / "python"
    if python.is_file() and subprocess.run([str(python), "-c", "import anomalib"], capture_output=True).returncode == 0:
        return python
    print(f"creating {PEER_VENV} with anomalib=={ANOMALIB_VERSION} (once)...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    # This environment's packages (torch above all) are visible to the peer, after its own: the same torch
    # build on both sides, and no second multi-gigabyte torch download.
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "simsearch-shared-torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"anomalib=={ANOMALIB_VERSION}"])
    if install.returncode != 0:
        raise SystemExit(f"could not install anomalib=={ANOMALIB_VERSION} into {PEER_VENV} (see pip's output above)")
    return python


def resident_gb(pid: int) -> float:
    """A live process's resident memory (Linux /proc; 0 where it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError):
        pass
    return 0.0


def run_child(python: Path | str, side: str, spec: dict, folder: Path, memory_cap_gb: float) -> dict:
    """One side in its own process; stopped (and reported as failed) when its resident memory passes the cap,
    before the kernel's out-of-memory killer takes it, or anything else, down."""
    spec_path = folder / f"{spec['name']}-{side}.json"
    spec_path.write_text(json.dumps({**spec, "weights": str(WEIGHTS)}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    out, err = folder / f"{side}.out", folder / f"{side}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen([str(python), str(Path(__file__).resolve()), "--child", side, str(spec_path)],
                                 stdout=stdout, stderr=stderr, env=env)
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, resident_gb(child.pid))
            if peak > memory_cap_gb:
                child.kill()
                child.wait()
                return {"failed": f"stopped at {peak:.1f} GB resident (over the {memory_cap_gb:g} GB cap, "
                                  f"--memory-cap)"}
            time.sleep(0.2)
    if child.returncode != 0:
        tail = err.read_text().strip()[-3000:]
        if side == "simsearch":
            raise SystemExit(f"simsearch on {spec['name']} failed:\n{tail}")
        return {"failed": f"exit status {child.returncode}: {tail.splitlines()[-1] if tail else 'no message'}"}
    return json.loads(out.read_text().strip().splitlines()[-1])


def compare(spec: dict, peer: Path, folder: Path, memory_cap_gb: float) -> dict:
    from simsearch.evaluate.metrics import image_auroc

    row: dict = {"set": spec["name"], "bank_images": len(spec["bank"]), "test_images": len(spec["test"]),
                 "test_defects": sum(spec["labels"]), "ratios": None}
    for side, python in (("simsearch", sys.executable), ("anomalib", peer)):
        result = run_child(python, side, spec, folder, memory_cap_gb)
        if "failed" in result:
            row[side] = result
            return row
        row[side] = {"build_s": round(result["build_s"], 2), "load_s": round(result["load_s"], 2),
                     **({"fit_s": round(result["fit_s"], 2), "embedder": result["embedder"]}
                        if "fit_s" in result else {}),
                     "score_images_per_s": round(len(spec["test"]) / result["score_s"], 2),
                     "peak_gb": round(result["peak_gb"], 3), "bank_patches": result["bank_patches"],
                     "image_auroc": round(image_auroc(spec["labels"], result["scores"]), 4)}
    ours, theirs = row["simsearch"], row["anomalib"]
    row["ratios"] = {"build_speedup": round(theirs["build_s"] / ours["build_s"], 2),
                     "score_speedup": round(ours["score_images_per_s"] / theirs["score_images_per_s"], 2),
                     "peak_memory_ratio": round(ours["peak_gb"] / theirs["peak_gb"], 2),
                     "auroc_difference": round(ours["image_auroc"] - theirs["image_auroc"], 4)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=30,
                        help="bank images per set (0: all; anomalib's coreset grows with its square)")
    parser.add_argument("--test-limit", type=int, default=40, help="ELPV test images of each class")
    parser.add_argument("--sets", default="bottle,elpv")
    parser.add_argument("--memory-cap", type=float, default=16.0, help="GB of resident memory a side may use")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, spec_path = args.child
        spec = json.loads(Path(spec_path).read_text())
        print(json.dumps((run_simsearch if side == "simsearch" else run_anomalib)(spec)))
        return
    if not WEIGHTS.is_file() or not (BOTTLE.is_dir() or ELPV.is_dir()):
        raise SystemExit(f"skipped: needs {WEIGHTS} and {BOTTLE} or {ELPV} (../shared beside the repo)")
    limit = args.limit or None
    makers = {"bottle": (BOTTLE, lambda: bottle_set(limit)), "elpv": (ELPV, lambda: elpv_set(limit, args.test_limit))}
    wanted = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in makers]
    if unknown:
        raise SystemExit(f"unknown set(s) {', '.join(unknown)}: choose from {', '.join(makers)}")
    peer = peer_python()
    report = {"machine": f"{os.cpu_count()} CPU cores", "anomalib": ANOMALIB_VERSION, "image_size": IMAGE_SIZE,
              "coreset_ratio": CORESET_RATIO, "weights": WEIGHTS.name, "sets": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            root, make = makers[name]
            if not root.is_dir():
                print(f"skipped {name}: {root} is absent", file=sys.stderr)
                continue
            report["sets"].append(compare(make(), peer, Path(tmp), args.memory_cap))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']}, anomalib {ANOMALIB_VERSION} PatchCore vs simsearch patch mode, ResNet-18 "
          f"layer2+layer3, {IMAGE_SIZE} px, coreset {CORESET_RATIO}")
    for row in report["sets"]:
        print(f"\n{row['set']}: bank {row['bank_images']} images, test {row['test_images']} "
              f"({row['test_defects']} defects)")
        print(f"  {'':10} {'build s':>8} {'score img/s':>12} {'peak GB':>8} {'AUROC':>7} {'bank':>7}")
        for side in ("simsearch", "anomalib"):
            r = row[side]
            if "failed" in r:
                print(f"  {side:10} failed: {r['failed']}")
                continue
            print(f"  {side:10} {r['build_s']:8.1f} {r['score_images_per_s']:12.1f} {r['peak_gb']:8.2f} "
                  f"{r['image_auroc']:7.3f} {r['bank_patches']:7d}")
        q = row["ratios"]
        if q is None:
            continue
        print(f"  simsearch: build {q['build_speedup']:.1f}x faster, scoring {q['score_speedup']:.1f}x faster, "
              f"peak memory {q['peak_memory_ratio']:.2f}x, AUROC {q['auroc_difference']:+.3f}")


if __name__ == "__main__":
    main()
