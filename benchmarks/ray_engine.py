"""Ray engine benchmark: build and score on a local Ray cluster against the single-process path, same
machine, same run, same images (ELPV: good cells indexed, other good and defect cells scored), same
ResNet-18 weights file. Prints images/s of each and their ratio, Ray's start-up apart, and the largest
score difference between the two paths (it should be float noise).

    python benchmarks/ray_engine.py [--workers 2] [--images 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
ELPV = SHARED / "data" / "elpv_subset"
WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (a local Ray of as many CPUs)")
    parser.add_argument("--images", type=int, default=300, help="images in all: a third indexed, the rest scored")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not ELPV.is_dir() or not WEIGHTS.is_file():
        raise SystemExit(f"skipped: needs {ELPV} and {WEIGHTS} (../shared beside the repo)")
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.engines import ray_engine
    from simsearch.inspector import Inspector

    good = sorted((ELPV / "good").glob("*.png"))
    defect = sorted((ELPV / "defect").glob("*.png"))
    n_index = args.images // 3
    indexed = good[:n_index]
    scored = good[n_index:n_index + (args.images - n_index) // 2]
    scored += defect[:args.images - n_index - len(scored)]
    embedder = BackboneEmbedder("resnet18", weights=WEIGHTS, device="cpu")
    report: dict = {"machine": f"{os.cpu_count()} CPU cores", "workers": args.workers, "indexed": len(indexed),
                    "scored": len(scored), "embedder": "resnet18 layer2+layer3, 224 px, patch mode, coreset 0.1"}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        local = Inspector(embedder, mode="patch", coreset_ratio=0.1).fit(indexed)
        local_build_s = time.perf_counter() - start
        folder = Path(tmp) / "index"
        local.save(folder, compile=True)  # as build-index saves it: the workers score with the compiled copy
        start = time.perf_counter()
        expected = local.score(scored)
        local_score_s = time.perf_counter() - start

        start = time.perf_counter()
        with ray_engine.ray_cluster(workers=args.workers) as cluster:
            ray_start_s = time.perf_counter() - start
            start = time.perf_counter()
            with ray_engine.RayExecutor(cluster) as executor:
                built = Inspector(embedder, mode="patch", coreset_ratio=0.1).fit(indexed, executor=executor)
            ray_build_s = time.perf_counter() - start
            start = time.perf_counter()
            with ray_engine.RayExecutor(cluster) as executor:
                got = list(local.iter_score(scored, maps="needed", executor=executor))
            ray_score_s = time.perf_counter() - start

    report["single_process"] = {"build_images_per_s": len(indexed) / local_build_s,
                                "score_images_per_s": len(scored) / local_score_s}
    report["ray"] = {"start_s": ray_start_s, "build_images_per_s": len(indexed) / ray_build_s,
                     "score_images_per_s": len(scored) / ray_score_s}
    report["ratio_ray_to_single"] = {"build": report["ray"]["build_images_per_s"]
                                     / report["single_process"]["build_images_per_s"],
                                     "score": report["ray"]["score_images_per_s"]
                                     / report["single_process"]["score_images_per_s"]}
    report["max_score_difference"] = float(np.max(np.abs(np.array([r.score for r in got])
                                                         - np.array([r.score for r in expected]))))
    report["same_patch_bank"] = bool(np.allclose(built.index_.vectors["patches"].vectors(),
                                                 local.index_.vectors["patches"].vectors(),
                                                 rtol=1e-4, atol=1e-5))
    if args.json:
        print(json.dumps(report))
        return
    single, ray = report["single_process"], report["ray"]
    print(f"machine: {report['machine']}; {report['embedder']}")
    print(f"build, {len(indexed)} images: single process {single['build_images_per_s']:.1f} images/s, "
          f"Ray ({args.workers} workers) {ray['build_images_per_s']:.1f} images/s "
          f"(x{report['ratio_ray_to_single']['build']:.2f}); same patch bank: {report['same_patch_bank']}")
    print(f"score, {len(scored)} images: single process {single['score_images_per_s']:.1f} images/s, "
          f"Ray {ray['score_images_per_s']:.1f} images/s (x{report['ratio_ray_to_single']['score']:.2f}); "
          f"largest score difference {report['max_score_difference']:.2g}")
    print(f"Ray start-up (not counted above): {ray['start_s']:.1f} s")


if __name__ == "__main__":
    main()
