"""`python -m poorvit report FOLDER`: run records to a results table and a figure, by
`poorvit.report`.

    python -m poorvit report runs/ --out runs/ --records   # report.md and report.png, every record
    python -m poorvit report runs/ --save-records results/ --page book/results.md

Its `--help` shows `poorvit.report`'s own description.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    """Register `report`: render run records as a results table and a figure."""
    from .. import report as report_module

    p = sub.add_parser("report", help="render run records as a results table and a figure",
                       description=report_module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", default="runs",
                   help="folder of run records (default: runs)")
    p.add_argument("--out", default=None, help="write report.md and report.png into this folder")
    p.add_argument("--records", action="store_true",
                   help="also list every record: device, scale, seed, commit")
    p.add_argument("--page", default=None,
                   help="update the generated blocks of a results page (e.g. book/results.md)")
    p.add_argument("--save-records", default=None, metavar="DIR",
                   help="copy each record (JSON only, no weights) into DIR as "
                        "<row>-<scale>-s<seed>-<key>.json")
    p.set_defaults(func=run)


def _save_records(records: list[dict], dest: Path) -> None:
    """Copy each record (its JSON, without the reader's `_` keys) into `dest` (`--save-records`)."""
    from ..report import identify

    dest.mkdir(parents=True, exist_ok=True)
    for rec in records:
        name = f"{identify(rec)[0]}-{rec.get('scale')}-s{rec.get('seed')}-{rec.get('key')}.json"
        clean = {k: v for k, v in rec.items() if not k.startswith("_")}
        (dest / name).write_text(json.dumps(clean, indent=1, default=str) + "\n")
    print(f"copied {len(records)} records into {dest}")


def run(args) -> int:
    """Print the table of the records in the folder; write report.md/.png, copy records, update a
    page as asked."""
    from ..report import figure, markdown, records_markdown, summarize, update_page
    from ..runs import find_runs
    from ..study import CITATION

    if not Path(args.folder).exists():
        raise ValueError(f"{args.folder}: no such folder")
    records = find_runs(args.folder)
    rows = summarize(records)
    text = (f"{len(records)} run records in {args.folder}; study numbers from {CITATION} "
            f"(arXiv 2501.06220)\n\n"
            + markdown(rows) + ("\n\n" + records_markdown(records) if args.records else ""))
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text + "\n", encoding="utf-8")
        if rows:
            figure(rows).savefig(out / "report.png", dpi=120, bbox_inches="tight")
        print(f"wrote {out / 'report.md'}" + (f" and {out / 'report.png'}" if rows else ""))
    if args.save_records:
        _save_records(records, Path(args.save_records))
    if args.page:
        changed = update_page(args.page, args.save_records or args.folder)
        status = f"updated {', '.join(changed)}" if changed else "already up to date"
        print(f"{args.page}: {status}")
    return 0


__all__ = ["add_parser", "run"]
