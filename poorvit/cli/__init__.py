"""The command line: `python -m poorvit COMMAND ...` (or `poorvit COMMAND ...` once installed).

    python -m poorvit train --preset paper --scale demo --set n_kv_head=4 --out runs/
    python -m poorvit train --preset cpu --minutes 10            # the CPU recipe on a time budget
    python -m poorvit bench loader                    # device loader vs a torchvision DataLoader

Each command lives in its own module of `poorvit.cli` with an `add_parser(subparsers)` that
registers it; this file only collects them. Importing it loads no command module: `build_parser()`
does, and each command imports the library it runs only when it runs.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module holding `add_parser(subparsers)`; each parser sets `func(args) -> int`
COMMANDS = {
    "train": "poorvit.cli.train",
    "bench": "poorvit.cli.bench",
    "sweep": "poorvit.cli.sweep",
    "report": "poorvit.cli.report",
    "student": "poorvit.cli.classroom",
    "grade": "poorvit.cli.classroom",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in `COMMANDS` (a module with two commands adds both once)."""
    parser = argparse.ArgumentParser(prog="python -m poorvit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. A ValueError (a bad option or config value) is one line on
    stderr, `error: ...`, and status 2, with no traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


__all__ = ["COMMANDS", "build_parser", "main"]
