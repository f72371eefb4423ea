"""`python -m poorvit chapters`: how long each chapter takes at each scale, from the ledger of the
trainings the chapters ran (`poorvit.ledger`).

    python -m poorvit chapters --ledger runs/ledger.jsonl --check          # CI, after the notebooks
    python -m poorvit chapters --ledger runs/ledger.jsonl --save results/chapters.json \\
        --page book/setup.md                                               # refresh the setup page
    python -m poorvit chapters --summary results/chapters.json --check     # from the committed one
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    """Register `chapters`: each chapter's time at each scale, and the demo budget check."""
    from .. import ledger

    p = sub.add_parser("chapters", help="each chapter's time at each scale (from the ledger of its "
                       "trainings); --check: the demo scale within its budget",
                       description=ledger.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ledger", default=None,
                   help="the ledger to read (default: ledger.jsonl in the run folder, "
                        "POORVIT_RUNS)")
    p.add_argument("--summary", default=None,
                   help="read a saved summary (e.g. results/chapters.json) instead of a ledger")
    p.add_argument("--save", default=None, help="write the summary as JSON here")
    p.add_argument("--source", default="", help="--save: where the ledger came from, in words")
    p.add_argument("--page", default=None,
                   help="update the <!-- chapters:times --> block of this page (book/setup.md)")
    p.add_argument("--gpu-records", default="results/gpu",
                   help="bench gpu records: a T4's measured rate replaces the estimate")
    p.add_argument("--check", action="store_true",
                   help=f"exit 1 when a chapter's demo estimate is over "
                        f"{ledger.DEMO_BUDGET_S:g} s on a T4")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the table; save the summary, update the page, check the budget as asked."""
    from .. import ledger

    if args.summary:
        summary = json.loads(Path(args.summary).read_text(encoding="utf-8"))
    else:
        path = Path(args.ledger) if args.ledger else ledger.ledger_path()
        summary = ledger.summarize(ledger.read(path), args.source)
    print(ledger.page_markdown(summary, args.gpu_records))
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.save}")
    if args.page:
        changed = ledger.update_page(args.page, summary, args.gpu_records)
        print(f"{args.page}: {'updated' if changed else 'already up to date'}")
    if args.check:
        over = ledger.over_budget(ledger.chapter_times(summary, args.gpu_records))
        if over:
            print("over the demo budget of " f"{ledger.DEMO_BUDGET_S:g} s on a T4: "
                  + ", ".join(f"{k} ({v:.0f} s)" for k, v in over.items()))
            return 1
        print(f"every chapter's demo training fits {ledger.DEMO_BUDGET_S:g} s on a T4")
    return 0


__all__ = ["add_parser", "run"]
