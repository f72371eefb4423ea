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
import os
import sys

# command name -> module holding `add_parser(subparsers)`; each parser sets `func(args) -> int`
COMMANDS = {
    "train": "poorvit.cli.train",
    "bench": "poorvit.cli.bench",
    "sweep": "poorvit.cli.sweep",
    "report": "poorvit.cli.report",
    "chapters": "poorvit.cli.chapters",
    "student": "poorvit.cli.classroom",
    "grade": "poorvit.cli.classroom",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in `COMMANDS` (a module with two commands adds both once)."""
    parser = argparse.ArgumentParser(prog="python -m poorvit", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one line "
                             "(also: POORVIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).add_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user causes and can fix, each raised with a message saying how: a bad option,
    config value, checkpoint or run folder (ValueError), missing or damaged data (DatasetError), a
    path that does not exist (FileNotFoundError)."""
    from ..data import DatasetError     # imported when an error is caught: data loads torchvision
    return ValueError, DatasetError, FileNotFoundError


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. An error the user can fix (`_user_errors`) is one line on
    stderr, `error: ...`, and status 2, with no traceback; Ctrl-C is one line (where the run can
    resume from, for `train`) and status 130, as an interrupted program has. `--debug` (or
    POORVIT_DEBUG=1) lets both raise with their traceback. Any other exception is a bug: it keeps
    its traceback."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("POORVIT_DEBUG", "").strip() not in ("", "0")
    try:
        return args.func(args) or 0
    except KeyboardInterrupt as err:
        if debug:
            raise
        print(f"interrupted: {err or 'stopped by Ctrl-C'}", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not isinstance(err, _user_errors()):
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """An error's message on one line (a FileNotFoundError names the path and what to check)."""
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename}: no such file or folder; check the path"
    return " ".join(str(err).split())


__all__ = ["COMMANDS", "build_parser", "main"]
