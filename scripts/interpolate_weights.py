"""Write the weight-space interpolation α·FINETUNED + (1−α)·START of two checkpoints of one architecture (WiSE-FT).

    python scripts/interpolate_weights.py --finetuned sbdbench/weights/sbd_finetune.pt \
        --start "$SBDBENCH_HOME/weights/score-denoise-official.pt" --alpha 0.25 --out sbd_wise.pt

The output keeps the fine-tune's metadata (recipe, data, provenance and licence of its start) and records α and the
sha256 of both files. Score a candidate on val with ``scripts/val_scores.py --param weights=FILE``; how the shipped
α was chosen is in docs/sbd-warm-start.md.
"""

from __future__ import annotations

import argparse
import json

from sbdbench.errors import SbdbenchError
from sbdbench.methods.learned.interpolation import interpolate_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetuned", required=True, help="the fine-tuned checkpoint (α = 1)")
    parser.add_argument("--start", required=True, help="the checkpoint it was fine-tuned from (α = 0)")
    parser.add_argument("--alpha", required=True, type=float, help="weight of the fine-tune, in [0, 1]")
    parser.add_argument("--out", required=True, help="output checkpoint")
    args = parser.parse_args()
    meta = interpolate_checkpoints(args.finetuned, args.start, args.alpha, args.out)
    print(json.dumps(meta["interpolation"]))


if __name__ == "__main__":
    try:
        main()
    except SbdbenchError as exc:  # bad input or data: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
