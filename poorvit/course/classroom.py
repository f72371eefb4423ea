"""Classroom assignments: student versions of the chapters, and grading of what students hand back.

    python -m poorvit student handout/                 # every chapter, each solution replaced by a
                                                       # stub, plus handout/index.md and index.json
    python -m poorvit grade handout/01_images_to_tokens.ipynb  # run at the smoke scale, score each

An exercise in a chapter is a code cell tagged `solution` whose metadata names it
(`"exercise": "tokens/patchify"`), followed by a cell calling `check("tokens/patchify", answer)`
from `poorvit.course.exercises`; no later cell uses what the solution defines. The student version
keeps every cell and its metadata and replaces only the source of each solution cell by a stub that
keeps the names the check uses: a function keeps its signature and raises `NotImplementedError`
naming the exercise; a value becomes `todo("...")`, which raises when it is used (the cell itself
still runs, so the notebook goes on). The check of an unsolved exercise then answers "not attempted
yet". Output is deterministic: same input, same bytes (nbformat's sorted keys, the cells' own ids,
no timestamps).

Grading executes the submitted notebook in a fresh kernel (nbclient) with `POORVIT_SCALE=smoke`,
every cell even after an error, with a time limit per cell, then reads each check cell's outcome:
passed, failed (the check's message), not attempted, or not graded (a cell raised something else: a
syntax error, a failed setup, a dead kernel; the report names the cell). A submission is code: grade
it where running a stranger's code is acceptable (a container, a throwaway account). The commands
themselves are in `poorvit.cli.classroom`.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import tempfile
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

TAG = "solution"
# a check call, found without parsing
CHECK_RE = re.compile(r"""\bcheck\(\s*\\?["']([\w./-]+)\\?["']""")


# ---- reading a notebook's exercises --------------------------------------------------------------

@dataclass
class Exercise:
    name: str                   # "tokens/patchify"
    solution: int | None        # index of the solution cell (None: not found)
    check: int | None           # index of the cell that calls check(name, ...)
    answer: list[str]           # the names the check cell passes to check(): the stub keeps them
    title: str = ""             # "Patchify by hand"
    task: str = ""              # the statement's first sentence


def python_source(source: str) -> str:
    """A cell's source as plain Python (IPython magics such as %pip turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def syntax_error(source: str) -> str | None:
    """"SyntaxError: <message> (line N)" when a code cell does not compile, else None."""
    try:
        compile(python_source(source), "<cell>", "exec")
    except SyntaxError as err:
        return f"{type(err).__name__}: {err.msg} (line {err.lineno})"
    return None


def _is_check(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "check")


def check_calls(source: str) -> list[tuple[str, list[str]]]:
    """[(exercise name, names used in the answer argument)] for each `check("name", answer)` in a
    cell."""
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return [(name, []) for name in CHECK_RE.findall(source)]
    found = []
    for node in ast.walk(tree):
        if _is_check(node):
            used = [n.id for arg in node.args[1:] for n in ast.walk(arg) if isinstance(n, ast.Name)]
            found.append((node.args[0].value, used))
    return found


def _statement(markdown: str) -> tuple[str, str]:
    """(title, first sentence) of an exercise statement: the last paragraph opening with a bold
    title."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown)
                  if p.strip() and not p.lstrip().startswith("#")]
    bold = [i for i, p in enumerate(paragraphs) if p.startswith("**")]
    start = max(bold or [len(paragraphs) - 1])
    text = " ".join(" ".join(paragraphs[start:]).split()) if paragraphs else ""
    title = ""
    bold = re.match(r"\*\*(?:\d+\.\s*)?(.+?)\.?\*\*\s*", text)
    if bold:
        title, text = bold.group(1), text[bold.end():]
    sentences = re.findall(r".+?[.?!](?=\s|$)", text) or [text]
    return title, next((s.strip() for s in sentences if s.strip().startswith("Write")),
                       sentences[0].strip())


def find_exercises(nb) -> list[Exercise]:
    """The notebook's exercises, in order: from solution cells, check cells and the student
    metadata."""
    by_name: dict[str, Exercise] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if TAG in cell.metadata.get("tags", []):
            name = cell.metadata.get("exercise") or next(
                (n for c in nb.cells[i + 1:i + 3] if c.cell_type == "code"
                 for n, _ in check_calls(c.source)), None)
            if name:
                ex = by_name.setdefault(name, Exercise(name, None, None, []))
                if ex.solution is None:
                    ex.solution = i
                    if i > 0 and nb.cells[i - 1].cell_type == "markdown":
                        ex.title, ex.task = _statement(nb.cells[i - 1].source)
        for name, used in check_calls(cell.source):
            ex = by_name.setdefault(name, Exercise(name, None, None, []))
            if ex.check is None:
                ex.check, ex.answer = i, used
    # an exercise the student metadata names is expected even when its check cell was deleted
    for name in nb.metadata.get("poorvit", {}).get("exercises", []):
        by_name.setdefault(name, Exercise(name, None, None, []))
    return sorted(by_name.values(),
                  key=lambda e: min(x for x in (e.solution, e.check, 10 ** 9) if x is not None))


# ---- student versions ----------------------------------------------------------------------------

def _defined(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = (node.targets if isinstance(node, ast.Assign)
               else [node.target] if isinstance(node, ast.AnnAssign) else [])
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _stub_definition(node: ast.stmt, mark: str, raise_line: str) -> str:
    """The stub of one function or class: its signature and docstring, then `raise_line`."""
    doc = ast.get_docstring(node)
    doc = textwrap.indent(f'"""{doc}"""\n', "    ") if doc and '"""' not in doc else ""
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in [*node.bases, *node.keywords])
        return (f"class {node.name}{f'({bases})' if bases else ''}:\n{doc}    {mark}\n"
                f"    def __init__(self, *args, **kwargs):\n        {raise_line}")
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return (f"{prefix} {node.name}({ast.unparse(node.args)}){returns}:\n"
            f"{doc}    {mark}\n    {raise_line}")


def stub_source(name: str, solution: str, keep: list[str] | None = None) -> str:
    """The stub that replaces a solution: the functions, classes and values it defines (those in
    `keep` when it names any), each raising NotImplementedError naming exercise `name`; no line of
    the solution's code."""
    mark = f"# Exercise {name}: your code here"
    raise_line = f'raise NotImplementedError("{name}")'
    tree = ast.parse(python_source(solution))
    defined = [n for node in tree.body for n in _defined(node)]
    wanted = [n for n in defined if n in (keep or [])] or defined
    parts, values, done = [], [], set()
    for node in tree.body:
        names = [n for n in _defined(node) if n in wanted and n not in done]
        done.update(names)
        if not names:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            parts.append(_stub_definition(node, mark, raise_line))
        else:
            values += names
    if values:
        parts.append("from poorvit.course.exercises import todo\n\n"
                     + "\n".join(f'{v} = todo("{name}")  # Exercise {name}: your answer here'
                                 for v in values))
    if not parts:  # defines nothing the check could use: the cell itself is the stub
        parts.append(f"{mark}\n{raise_line}")
    return "\n\n\n".join(parts)


def student_notebook(nb) -> nbformat.NotebookNode:
    """A copy of `nb` with each solution cell's source replaced by its stub and its outputs
    cleared."""
    nb = copy.deepcopy(nb)
    exercises = find_exercises(nb)
    for ex in exercises:
        if ex.solution is None:
            continue
        cell = nb.cells[ex.solution]
        cell.source = stub_source(ex.name, cell.source, ex.answer)
        cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata["poorvit"] = {"student": True, "exercises": [ex.name for ex in exercises]}
    nbformat.validate(nb)
    return nb


def course_notebooks() -> list[Path]:
    """The chapter notebooks: ./notebooks when it exists, else the ones beside the package's
    checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        found = sorted((root / "notebooks").glob("[0-9]*.ipynb"))
        if found:
            return found
    raise ValueError("no chapter notebooks found: run this in a clone of the course, "
                     "or name the notebooks")


def write_student(out: str | Path, notebooks: list[Path] | None = None) -> list[dict]:
    """Write the student version of each notebook into `out`, plus index.md and index.json; returns
    the index."""
    from .exercises import load_checks

    checks = load_checks()
    out, notebooks = Path(out), notebooks or course_notebooks()
    if any(Path(path).resolve().parent == out.resolve() for path in notebooks):
        raise ValueError(f"{out} holds the chapters themselves: "
                         "writing there would overwrite their solutions")
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        titles = (line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# "))
        chapter = next(titles, Path(path).stem)
        nbformat.write(student_notebook(nb), out / Path(path).name)
        for ex in find_exercises(nb):
            doc = checks.get(ex.name, {}).get("doc", "").split("\n\n")
            index.append({"notebook": Path(path).name, "chapter": chapter, "exercise": ex.name,
                          "title": ex.title, "task": ex.task,
                          "answer": ", ".join(dict.fromkeys(ex.answer)),
                          "check": " ".join(doc[0].split()) if doc else "(no registered check)"})
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False)
                                    + "\n", encoding="utf-8")
    (out / "index.md").write_text(index_markdown(index), encoding="utf-8")
    return index


def index_markdown(index: list[dict]) -> str:
    cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["# Exercises", "",
             "Each exercise is a cell that raises `NotImplementedError` until it is written, "
             "followed by a cell that",
             "checks it. Grade a notebook with `python -m poorvit grade NOTEBOOK.ipynb`.", ""]
    for notebook in dict.fromkeys(row["notebook"] for row in index):
        rows = [r for r in index if r["notebook"] == notebook]
        lines += [f"## {rows[0]['chapter']} (`{notebook}`)", "",
                  "| exercise | task | write | checked against |", "| --- | --- | --- | --- |"]
        for r in rows:
            title = r["title"].rstrip(".") + ("" if r["title"][-1:] in "?!" else ".")
            lines.append(f"| `{r['exercise']}` | **{cell(title)}** {cell(r['task'])} | "
                         f"`{cell(r['answer'])}` | {cell(r['check'])} |")
        lines.append("")
    return "\n".join(lines)


# ---- grading -------------------------------------------------------------------------------------

@dataclass
class Result:
    exercise: str
    status: str                 # passed | failed | not attempted | not graded
    message: str

    @property
    def points(self) -> int:
        return int(self.status == "passed")


@dataclass
class Report:
    notebook: str
    results: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)      # errors outside the exercises' own cells
    failed_cells: list[int] = field(default_factory=list)  # every cell that raised, numbered from 1

    @property
    def score(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def complete(self) -> bool:
        """Every exercise graded and no other cell failed."""
        return not self.problems and all(r.status != "not graded" for r in self.results)

    def to_dict(self) -> dict:
        return {"notebook": self.notebook, "score": self.score, "total": len(self.results),
                "complete": self.complete, "problems": self.problems,
                "failed_cells": self.failed_cells,
                "results": [{**asdict(r), "points": r.points} for r in self.results]}

    def text(self) -> str:
        width = max([len(r.exercise) for r in self.results] + [8])
        lines = [f"{self.notebook}: {self.score}/{len(self.results)}"]
        for r in self.results:
            mark = "✓" if r.status == "passed" else "✗"
            first, *rest = r.message.splitlines() or [""]
            status = "" if first.startswith(r.status) else f"{r.status}: "  # "not attempted yet..."
            lines.append(f"  {mark} {r.exercise:<{width}}  {r.points}/1  {status}{first}")
            lines += [f"      {' ' * width}  {line}" for line in rest]
        lines += [f"  ! {p}" for p in self.problems]
        return "\n".join(lines)


def _where(nb, i: int) -> str:
    first = next((line.strip() for line in nb.cells[i].source.splitlines() if line.strip()), "")
    return f"cell {i + 1} (`{first[:60]}`)"


def execute(nb, scale: str = "smoke", timeout: int = 600) -> tuple[dict[int, str], int | None]:
    """Run every code cell of `nb` in place in a fresh python3 kernel, in a temporary folder, with
    POORVIT_SCALE=scale. Returns ({cell index: "Name: message"} for the cells that raised, the index
    of the cell at which the kernel died or None)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    errors: dict[int, str] = {}

    def on_error(cell, cell_index, execute_reply):
        content = execute_reply["content"]
        ename, evalue = content.get("ename", "Error"), content.get("evalue", "")
        errors[cell_index] = f"{ename}: {evalue}" if evalue else ename

    with tempfile.TemporaryDirectory(prefix="poorvit-grade-") as tmp:
        timed_out = {"ename": "Timeout", "evalue": f"did not finish within {timeout} s"}
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                interrupt_on_timeout=True, on_cell_error=on_error,
                                error_on_timeout=timed_out, resources={"metadata": {"path": tmp}})
        env = {**os.environ, "POORVIT_SCALE": scale, "MPLBACKEND": "agg"}
        with client.setup_kernel(env=env, cwd=tmp):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, i)
                except DeadKernelError:
                    return errors, i
    return errors, None


def grade_notebook(nb, name: str = "notebook", scale: str = "smoke", timeout: int = 600) -> Report:
    """Execute `nb` (a copy) and grade each exercise from its check cell's outcome."""
    nb = copy.deepcopy(nb)
    report = Report(name)
    exercises = find_exercises(nb)
    if not exercises:
        report.problems.append("no exercise found: "
                               "no cell calls poorvit.course.exercises.check(...)")
        return report
    syntax = {i: err for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and (err := syntax_error(c.source))}
    try:
        errors, died = execute(nb, scale, timeout)
    except Exception as err:  # the kernel did not start: nothing ran
        reason = f"the notebook could not be run: {type(err).__name__}: {err}"
        report.results = [Result(ex.name, "not graded", reason) for ex in exercises]
        report.problems.append(reason)
        return report
    errors.update({i: syntax[i] for i in errors.keys() & syntax.keys()})
    report.failed_cells = [i + 1 for i in sorted(errors)]
    own = {i for ex in exercises for i in (ex.solution, ex.check) if i is not None}
    for i in sorted(errors.keys() - own):
        report.problems.append(f"{_where(nb, i)} raised {errors[i]}")
    if died is not None:
        report.problems.append(f"the kernel died while running {_where(nb, died)}; "
                               "later cells did not run")
    for ex in exercises:
        report.results.append(_grade_one(nb, ex, errors, died))
    return report


def _grade_one(nb, ex: Exercise, errors: dict[int, str], died: int | None) -> Result:
    if ex.check is None:
        return Result(ex.name, "not graded", f'no cell calls check("{ex.name}", ...): '
                                             "put the check cell back under the exercise")
    if died is not None and ex.check >= died:
        return Result(ex.name, "not graded", f"not run: the kernel died at {_where(nb, died)}")
    error = errors.get(ex.check)
    if error is None:
        printed = "".join(o.get("text", "") for o in nb.cells[ex.check].outputs
                          if o.get("output_type") == "stream")
        verdict = re.search(rf"^✓ {re.escape(ex.name)}: (.*)$", printed, re.M)
        if verdict:
            return Result(ex.name, "passed", verdict.group(1))
        return Result(ex.name, "not graded",
                      f"{_where(nb, ex.check)} ran but printed no verdict: was it changed?")
    if error.startswith("ExerciseError: "):
        message = re.sub(rf"^✗ {re.escape(ex.name)}: ", "", error[len("ExerciseError: "):])
        status = "not attempted" if message.startswith("not attempted") else "failed"
        return Result(ex.name, status, message)
    # the check cell crashed before grading: say what broke first
    if ex.solution is not None and ex.solution in errors:
        cause = f"your {_where(nb, ex.solution)} raised {errors[ex.solution]}"
    else:
        before = [i for i in sorted(errors) if i < ex.check and i != ex.solution]
        cause = f"{_where(nb, before[0])} raised {errors[before[0]]}" if before else ""
    check = f"{_where(nb, ex.check)} raised {error}"
    return Result(ex.name, "not graded",
                  f"{cause}; then the check {check}" if cause else f"the check {check}")


def grade(path: str | Path, scale: str = "smoke", timeout: int = 600) -> Report:
    """Grade a submitted notebook file; an unreadable file is reported, not raised."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:
        raw = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        first = str(err).splitlines()[0] if str(err) else ""
        reason = f"not a readable notebook: {type(err).__name__}: {first}"
        report = Report(path.name, problems=[reason])
        report.results = [Result(name, "not graded", reason)
                          for name in dict.fromkeys(CHECK_RE.findall(raw))]
        return report
    return grade_notebook(nb, path.name, scale, timeout)


__all__ = ["Exercise", "Result", "Report", "find_exercises", "check_calls", "stub_source",
           "student_notebook", "course_notebooks", "write_student", "index_markdown", "execute",
           "grade_notebook", "grade"]
