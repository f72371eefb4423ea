"""`python -m poorvit student OUT` and `python -m poorvit grade NOTEBOOK ...`: the classroom
commands (`poorvit.course.classroom`).

    python -m poorvit student handout/                            # every chapter, as stubs
    python -m poorvit grade submitted/*.ipynb --json grades.json  # run each, score each exercise

`student` writes the student version of each chapter plus index.md and index.json; `grade` runs each
submitted notebook at the smoke scale and prints its score per exercise, exiting 1 when a notebook
could not be graded in full. Their `--help` shows `poorvit.course.classroom`'s own description.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    """Register `student` (write student versions) and `grade` (score submitted notebooks)."""
    from ..course import classroom

    p = sub.add_parser("student",
                       help="write student versions of the chapters (solutions replaced by stubs)",
                       description=classroom.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for the student notebooks, index.md and index.json")
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="chapter notebooks (default: every one in notebooks/)")
    p.set_defaults(func=run_student)
    g = sub.add_parser("grade",
                       help="run submitted notebooks at the smoke scale and score each exercise",
                       description=classroom.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("submitted", nargs="+", type=Path, help="submitted notebooks (.ipynb)")
    g.add_argument("--scale", default="smoke", help="POORVIT_SCALE for the run (default: smoke)")
    g.add_argument("--timeout", type=int, default=600,
                   help="seconds allowed per cell (default: 600)")
    g.add_argument("--json", default=None, metavar="FILE", help="also write the scores as JSON")
    g.set_defaults(func=run_grade)


def run_student(args) -> int:
    """Write the student notebooks (the named ones, or every chapter) and their index."""
    from ..course.classroom import course_notebooks, write_student

    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook: {', '.join(missing)}")
    notebooks = args.notebooks or course_notebooks()
    index = write_student(args.out, notebooks)
    print(f"wrote {len(notebooks)} student notebooks ({len(index)} exercises) and "
          f"{Path(args.out) / 'index.md'}")
    return 0


def run_grade(args) -> int:
    """Grade each submitted notebook and print its report; 1 unless every one was graded in full."""
    from ..course.classroom import grade

    missing = [str(p) for p in args.submitted if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook: {', '.join(missing)}")
    reports = []
    for path in args.submitted:
        print(f"grading {path} at the {args.scale} scale ...", file=sys.stderr, flush=True)
        reports.append(grade(path, args.scale, args.timeout))
        print(reports[-1].text(), flush=True)
    if args.json:
        scores = json.dumps([r.to_dict() for r in reports], indent=1, ensure_ascii=False)
        Path(args.json).write_text(scores + "\n", encoding="utf-8")
    return 0 if all(r.complete for r in reports) else 1


__all__ = ["add_parser", "run_student", "run_grade"]
