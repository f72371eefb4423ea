"""The command line: `python -m poorvit COMMAND ...` (or `poorvit COMMAND ...` once installed).

    python -m poorvit train --preset paper --scale demo --set n_kv_head=4 --out runs/
    python -m poorvit train --preset cpu --minutes 10            # the CPU recipe on a time budget
    python -m poorvit bench loader                               # device loader vs a torchvision DataLoader

Each command lives in its own module with an `add_parser(subparsers)` that registers it; this file only
collects them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module holding `add_parser(subparsers)`; each parser sets `func(args) -> int`
COMMANDS = {
    "train": "poorvit.cli_train",
    "bench": "poorvit.bench",
    "sweep": "poorvit.sweep",
    "report": "poorvit.report",
    "student": "poorvit.classroom",
    "grade": "poorvit.classroom",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m poorvit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ValueError as err:           # a bad config value or option: say it plainly, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
