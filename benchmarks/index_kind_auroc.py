"""What an index kind does to the answer: image AUROC on real images with the patch bank held in each kind
(exact, 8-bit codes, approximate lists), the rest of the pipeline unchanged.

Bottle: train/good -> all of test/; ELPV: the seeded split of benchmarks/peer_anomalib.py (`--elpv-bank` good
images in the bank, `--elpv-test` held-out good + as many defects). Coreset 10 %, ResNet-18 layer2+layer3,
the shared weights file. The kinds are FAISS factory strings for the patch bank (`patches=KIND`); a kind
whose lists need more vectors than the bank holds stays exact and says so.

    python benchmarks/index_kind_auroc.py [--kinds "Flat;SQ8;IVF64,Flat;IVF64,SQ8"] [--sets bottle,elpv] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peer_anomalib import BOTTLE, ELPV, WEIGHTS, bottle_set, elpv_set  # noqa: E402

DEFAULT_KINDS = "Flat;SQ8;IVF64,Flat;IVF64,SQ8"  # factory strings hold commas: ; between kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=DEFAULT_KINDS, help="semicolon-separated kinds for the patch bank")
    parser.add_argument("--sets", default="bottle,elpv", help="comma-separated: bottle, elpv")
    parser.add_argument("--elpv-bank", type=int, default=100, help="ELPV good images in the bank")
    parser.add_argument("--elpv-test", type=int, default=60, help="ELPV held-out good images (and defects)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    args = parser.parse_args()
    for path in (WEIGHTS, BOTTLE, ELPV):
        if not path.exists():
            raise SystemExit(f"{path} is missing: this benchmark needs the shared data and weights")

    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.inspector import Inspector

    chosen = [name.strip() for name in args.sets.split(",") if name.strip()]
    sets = [bottle_set(None) if name == "bottle" else elpv_set(args.elpv_bank, args.elpv_test) for name in chosen]
    if not args.json:
        print(f"{'set':<13} {'patch bank kind':<18} {'built':<18} {'depth':>5} {'AUROC':>7} {'s':>6}")
    for spec in sets:
        for kind in [k.strip() for k in args.kinds.split(";") if k.strip()]:
            start = time.perf_counter()
            inspector = Inspector(BackboneEmbedder("resnet18", weights=WEIGHTS), coreset_ratio=0.1,
                                  index_kind={"patches": kind}).fit(spec["bank"])
            scores = [result.score for result in inspector.score(spec["test"])]
            record = inspector.index_.vectors["patches"].record
            row = {"set": spec["name"], "kind": kind, "built": record.kind if record else "Flat",
                   "nprobe": record.nprobe if record else None, "patches": len(inspector.index_.vectors["patches"]),
                   "image_auroc": round(image_auroc(spec["labels"], scores), 4),
                   "seconds": round(time.perf_counter() - start, 1)}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{row['set']:<13} {kind[:18]:<18} {row['built'][:18]:<18} {row['nprobe'] or '':>5} "
                      f"{row['image_auroc']:>7.4f} {row['seconds']:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
