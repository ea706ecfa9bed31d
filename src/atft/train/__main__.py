"""What the training container runs: ``python -m atft.train --config C [--data PANEL] --out RUN_DIR [--resume auto]``.

Argument parsing stays in the standard library (the library never imports the CLI or typer). Errors a user
can fix print one line and exit with their documented code; ``ATFT_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn

from atft.config import load_config
from atft.errors import AtftError
from atft.train.job import run_training


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line (exit 2), like every other error of a pod's log."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see python -m atft.train --help\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m atft.train", description=__doc__)
    parser.add_argument("--config", help="run config YAML (default: the built-in demo settings)")
    parser.add_argument("--data", help="feature panel (Parquet); default: data.path, else the synthetic market")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="dotted override KEY=VALUE")
    parser.add_argument("--out", required=True, help="run directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument(
        "--resume",
        help="'auto': continue from the newest good checkpoint in --out (fresh start when there is none); "
        "or the path of one checkpoint directory",
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.sets)
        result, report = run_training(
            cfg, args.out, args.data, args.overwrite, progress=sys.stderr.isatty(), resume=args.resume
        )
    except AtftError as exc:
        if os.environ.get("ATFT_DEBUG") == "1":
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not report:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    failed = [o["name"] for o in report["objectives"] if not o["passed"]]
    print(f"best epoch {result.best_epoch}; objectives failed: {failed or 'none'}; report: {args.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
