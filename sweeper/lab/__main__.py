"""`python -m sweeper.lab build|serve --dir DIR --nodes N [--seed S] [--rebuild]`.

`serve` builds the lab if needed, then serves it until SIGTERM/SIGINT; `start_lab` runs
this in the background. Exit status 2 with a one-line error for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sweeper.collector import collect_less_often
from sweeper.lab.build import build_lab
from sweeper.lab.paths import LabError
from sweeper.lab.server import serve_lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.lab")
    parser.add_argument("command", choices=("build", "serve"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if fresh")
    parser.add_argument("--hostile", default="", help="hostile nodes to add, comma-separated")
    args = parser.parse_args(argv)
    try:
        hostile = tuple(kind for kind in args.hostile.split(",") if kind)
        build = build_lab(args.dir, args.nodes, args.seed, rebuild=args.rebuild, hostile=hostile)
        verb = "reused" if build.reused else "built"
        print(f"lab {verb}: {args.nodes} nodes in {build.seconds:.1f}s", file=sys.stderr)
        if args.command == "serve":
            collect_less_often()  # a sweeper process: its SSH servers make garbage as a sweep's client does
            asyncio.run(serve_lab(args.dir))
    except LabError as exc:
        print(f"sweeper lab: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
