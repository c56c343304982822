#!/usr/bin/env python3
"""How sharp must a super-resolved image be to pass the paper's gap criterion?

    python tools/gap_metric_ceiling.py [--sample gold-on-carbon] [--pairs 4] [--seed 9000]
                                       [--size 924x780] [--out ceiling.md]

Simulates the pairs of ``semzoo simulate --seed SEED --pairs N`` (the README's test pairs by
default) and measures, against the gaps the noisy target shows, the target's noise-free signal,
Gaussian-blurred versions of it and its every-2nd-sample Lanczos version
(zoo.evaluation.ceiling). Prints a markdown table (and writes it with --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.sim.samples import pair_seeds, parse_size, sample_spec  # noqa: E402
from zoo.errors import UserError  # noqa: E402
from zoo.evaluation.ceiling import gap_metric_ceiling, markdown_ceiling  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default="gold-on-carbon")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("--size", default="924x780")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    try:
        spec = sample_spec(args.sample)
        if args.pairs < 1:
            raise UserError(f"--pairs must be at least 1, got {args.pairs}")
        size = parse_size(args.size)
        if args.out is not None and args.out.exists():
            raise UserError(f"{args.out} exists; choose another --out")

        def progress(done, total):
            print(f"pair {done}/{total}", file=sys.stderr, flush=True)

        rows = gap_metric_ceiling(args.sample, pair_seeds(args.seed, args.pairs), size=size, progress=progress)
        text = (f"Gap-metric ceiling: {args.sample}, {args.pairs} pairs from seed {args.seed}, "
                f"{size[0]}x{size[1]}, target pixel {spec.hr_pixel_size_nm:g} nm\n\n"
                + markdown_ceiling(rows, spec.hr_pixel_size_nm) + "\n")
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
