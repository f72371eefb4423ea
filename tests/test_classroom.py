"""Classroom assignments: every exercise follows the convention and has its check, the student
versions hold no solution and fail only at their stubs, and grading scores exactly what was solved,
reporting a broken notebook per exercise instead of crashing.

The grading tests execute small synthetic notebooks (a setup cell, two exercises) in a real kernel;
the real chapters are executed by nbmake, not here."""
import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from poorvit.cli import main
from poorvit.course import classroom
from poorvit.course.exercises import CHECKS, ExerciseError, check, load_checks, todo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import tidy_notebooks as tidy  # noqa: E402

CHAPTERS = tidy.chapters()


def _code(source, **metadata):
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def _md(source):
    return nbformat.v4.new_markdown_cell(source)


# ---- the chapters follow the convention ----------------------------------------------------------

def _exercises(path):
    return classroom.find_exercises(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_each_exercise_is_a_statement_a_solution_cell_and_a_check_cell(path):
    nb = nbformat.read(path, as_version=4)
    exercises = classroom.find_exercises(nb)
    assert 2 <= len(exercises) <= 4, f"{len(exercises)} exercises; a chapter has 2 to 4"
    for ex in exercises:
        assert ex.solution is not None, \
            f"{ex.name}: no code cell tagged 'solution' with \"exercise\": \"{ex.name}\""
        cell = nb.cells[ex.solution]
        assert cell.metadata.get("exercise") == ex.name, \
            f"cell {ex.solution}: metadata lacks \"exercise\": \"{ex.name}\""
        assert ex.check is not None and ex.check > ex.solution, \
            f"{ex.name}: no check(...) cell after the solution"
        assert nb.cells[ex.solution - 1].cell_type == "markdown" and ex.title and ex.task, \
            f"{ex.name}: the cell before the solution should state the task " \
            "(**N. Title.** Write ...)"
        assert ex.answer, f"{ex.name}: the check cell passes no name defined by the solution"
    slugs = {ex.name.split("/")[0] for ex in exercises}
    assert len(slugs) == 1, f"one chapter slug per notebook, found {sorted(slugs)}"


def test_every_exercise_has_a_registered_check_and_every_check_is_used():
    load_checks()
    used = {ex.name: path.name for path in CHAPTERS for ex in _exercises(path)}
    assert sorted(set(used) - set(CHECKS)) == [], \
        "exercises in notebooks without an @exercise check in poorvit.course (ch*.py)"
    unused = sorted(set(CHECKS) - set(used))
    slugs = {name.split("/")[0] for name in used}
    assert [n for n in unused if n.split("/")[0] in slugs] == [], "checks no notebook uses"
    orphans = [n for n in unused if n.split("/")[0] not in slugs]
    missing_chapters = tidy.toc_mismatch()
    # their chapter is being written: listed in the toc, no notebook yet
    if orphans and missing_chapters:
        pytest.skip(f"checks {orphans} wait for a chapter: {missing_chapters}")
    assert orphans == [], "checks of a chapter slug that no notebook uses"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_later_cell_uses_what_a_solution_defines(path):
    nb = nbformat.read(path, as_version=4)
    exercises = {ex.solution: ex for ex in classroom.find_exercises(nb) if ex.solution is not None}
    live, found = {}, []                          # name -> exercise whose solution defined it
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(classroom.python_source(cell.source))
        nodes = list(ast.walk(tree))
        bound = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        bound |= {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        bound |= {(a.asname or a.name).split(".")[0] for n in nodes
                  if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        if i in exercises:
            live.update({name: exercises[i] for name in bound})
            continue
        loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        found += [f"cell {i} uses {name} from the solution of {live[name].name}"
                  for name in sorted(loaded & live.keys()) if live[name].check != i]
        for name in bound:
            live.pop(name, None)
    assert found == [], \
        "student versions replace solutions by stubs, so later cells must not use them"


def _skeleton(nb, ex):
    """The imports of every code cell before the check, the solution's definitions, and the check
    call."""
    parts = []
    for i, cell in enumerate(nb.cells[:ex.check + 1]):
        if cell.cell_type != "code" or "colab-setup" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(classroom.python_source(cell.source))
        keep = (ast.Import, ast.ImportFrom) + ((ast.Expr,) if i == ex.check else ())
        parts += [ast.unparse(node) for node in tree.body if isinstance(node, keep)
                  or i == ex.solution and set(classroom._defined(node)) & set(ex.answer)]
    return "\n".join(parts)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_solution_passes_its_check(path, capsys):
    """The solution cells, run without the chapter around them, pass their checks (nbmake runs
    them in place)."""
    nb = nbformat.read(path, as_version=4)
    for ex in classroom.find_exercises(nb):
        code = compile(_skeleton(nb, ex), f"{path.name}:{ex.name}", "exec")
        exec(code, {"__name__": "__exercise__"})
        assert f"✓ {ex.name}:" in capsys.readouterr().out


# ---- student versions ----------------------------------------------------------------------------

def test_student_versions_of_the_chapters_hold_no_solution_and_name_every_exercise(tmp_path):
    index = classroom.write_student(tmp_path / "a", CHAPTERS)
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / "a" / path.name, as_version=4)
        assert len(student.cells) == len(nb.cells)
        exercises = {ex.solution: ex for ex in classroom.find_exercises(nb)}
        stub_lines = {line.strip() for i in exercises
                      for line in student.cells[i].source.splitlines()}
        for i, (cell, mine) in enumerate(zip(nb.cells, student.cells)):
            assert mine.id == cell.id and mine.metadata == cell.metadata
            assert mine.cell_type == cell.cell_type
            if i not in exercises:
                assert mine.source == cell.source
                continue
            ex = exercises[i]
            assert (f'NotImplementedError("{ex.name}")' in mine.source
                    or f'todo("{ex.name}")' in mine.source)
            for name in ex.answer:
                assert f"def {name}(" in mine.source or f"{name} = todo(" in mine.source, \
                    f"{ex.name}: stub lacks {name}"
            tree = ast.parse(classroom.python_source(cell.source))
            docs = {ast.get_docstring(n) for n in ast.walk(tree)
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            code = [line.strip() for line in cell.source.splitlines()
                    if line.strip() and not line.strip().startswith(("def ", "#", '"""'))
                    and line.strip() not in docs]
            assert [line for line in code if line in stub_lines] == [], \
                f"{ex.name}: solution code survived"
        assert student.metadata["poorvit"]["exercises"] == [ex.name for ex in exercises.values()]
    assert {row["exercise"] for row in index} == {ex.name for p in CHAPTERS for ex in _exercises(p)}
    text = (tmp_path / "a" / "index.md").read_text()
    assert all(f"`{row['exercise']}`" in text and row["task"].startswith("Write") for row in index)
    assert json.loads((tmp_path / "a" / "index.json").read_text()) == index
    # deterministic: the same bytes again
    assert main(["student", str(tmp_path / "b"), *map(str, CHAPTERS)]) == 0
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_student_refuses_to_overwrite_the_chapters():
    with pytest.raises(ValueError, match="overwrite"):
        classroom.write_student(ROOT / "notebooks", CHAPTERS[:1])


def test_stubs_keep_signatures_and_values_raise_when_used():
    src = ('import torch\n\ndef helper(x):\n    return x + 1\n\n'
           'def my_fn(x, p: int = 2, *rest, scale=1.0) -> torch.Tensor:\n'
           '    """Patches of x."""\n    return helper(x) * p\n\nprint(my_fn(1))\n')
    stub = classroom.stub_source("demo/fn", src, keep=["my_fn"])
    assert "helper" not in stub and "torch.Tensor" in stub and "import torch" not in stub
    assert "def my_fn(x, p: int=2, *rest, scale=1.0) -> torch.Tensor:" in stub
    assert '"""Patches of x."""' in stub
    namespace = {"torch": __import__("torch")}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="demo/fn"):
        namespace["my_fn"](1)
    stub = classroom.stub_source("demo/value",
                                 "from poorvit import study\nmy_row, n = study.Row('x'), 3\n")
    namespace = {}
    exec(stub, namespace)                                  # the cell runs: the notebook goes on
    with pytest.raises(NotImplementedError, match="demo/value"):
        namespace["my_row"].model
    with pytest.raises(NotImplementedError, match="demo/value"):
        namespace["n"] + 1
    with pytest.raises(ExerciseError, match="not attempted yet"):
        check("together/row", namespace["my_row"])
    stub = classroom.stub_source("demo/none", "print(1)\n")
    assert stub.endswith('raise NotImplementedError("demo/none")')
    assert repr(todo("demo/value")) == "todo('demo/value')"


# ---- grading -------------------------------------------------------------------------------------

SETUP = '''import torch
from poorvit.course.exercises import ExerciseError, check, exercise

@exercise("classroom-test/double", hint="multiply by 2")
def _check_double(fn):
    """fn(x) -> 2 * x."""
    for x in (1, 5, -3):
        if fn(x) != 2 * x:
            raise ExerciseError(f"for x={x} expected {2 * x}, got {fn(x)}")
    return "doubles"
print("setup done")'''


KEPT = "def n_kept(eigvals, eps):\n    return int((eigvals / (eigvals + eps) > 0.9).sum())"


def _assignment(kept_solution=KEPT, double_solution="def double(x):\n    return 2 * x",
                setup=SETUP):
    cells = [_code(setup), _md("Some text.\n\n## Exercises\n\n**1. Double.** Write `double(x)`."),
             _code(double_solution, tags=["solution"], exercise="classroom-test/double"),
             _code('check("classroom-test/double", double)'),
             _md("**2. Directions kept.** Write `n_kept(eigvals, eps)`."),
             _code(kept_solution, tags=["solution"], exercise="whitening/kept"),
             _code('check("whitening/kept", n_kept)'),
             _code("print('the end')")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(tidy.KERNELSPEC)
    return nb


def test_grading_the_solution_scores_everything():
    report = classroom.grade_notebook(_assignment(), "solved.ipynb", timeout=120)
    assert [(r.exercise, r.status) for r in report.results] == [
        ("classroom-test/double", "passed"), ("whitening/kept", "passed")]
    assert report.score == 2 and report.complete and "2/2" in report.text()


def test_a_student_notebook_fails_only_at_its_stubs_and_scores_exactly_what_is_solved(tmp_path):
    student = classroom.student_notebook(_assignment())
    assert "return 2 * x" not in student.cells[2].source
    assert "eigvals + eps" not in student.cells[5].source
    student.cells[2].source = "def double(x):\n    return x + x"  # the student solves the first
    path, out = tmp_path / "submitted.ipynb", tmp_path / "scores.json"
    nbformat.write(student, path)
    assert main(["grade", str(path), "--json", str(out), "--timeout", "120"]) == 0  # graded in full
    report = json.loads(out.read_text())[0]
    assert [(r["exercise"], r["status"], r["points"]) for r in report["results"]] == [
        ("classroom-test/double", "passed", 1), ("whitening/kept", "not attempted", 0)]
    assert report["score"] == 1 and report["complete"] and report["problems"] == []
    assert report["failed_cells"] == [7]          # only the check of the unsolved stub raised


def test_a_wrong_answer_and_a_syntax_error_are_reported_per_exercise(tmp_path, capsys):
    nb = _assignment(double_solution="def double(x):\n    return x +* 2",
                     kept_solution="def n_kept(eigvals, eps):\n    return 3")
    path, out = tmp_path / "broken.ipynb", tmp_path / "scores.json"
    nbformat.write(nb, path)
    # not every exercise graded
    assert main(["grade", str(path), "--json", str(out), "--timeout", "120"]) == 1
    text = capsys.readouterr().out
    assert "Traceback" not in text and "0/2" in text and "SyntaxError" in text
    report = json.loads(out.read_text())[0]
    double, kept = report["results"]
    assert double["status"] == "not graded" and "cell 3" in double["message"] \
        and "SyntaxError: invalid syntax (line 2)" in double["message"]
    assert kept["status"] == "failed" and "says 3" in kept["message"] and "Hint:" in kept["message"]
    assert report["score"] == 0 and not report["complete"]


def test_a_broken_setup_and_an_unreadable_file_are_reported_per_exercise(tmp_path):
    setup = "import torch\nfrom poorvit.course.exercises import check\nx = (1"
    report = classroom.grade_notebook(_assignment(setup=setup), timeout=120)
    assert [r.status for r in report.results] == ["not graded", "not graded"]
    assert all("cell 1" in r.message and "SyntaxError" in r.message for r in report.results)
    assert any("cell 1" in p for p in report.problems) and not report.complete
    path = tmp_path / "cut.ipynb"
    path.write_text(nbformat.writes(_assignment())[:-200])                    # a truncated upload
    report = classroom.grade(path)
    assert [(r.exercise, r.status) for r in report.results] == [
        ("classroom-test/double", "not graded"), ("whitening/kept", "not graded")]
    assert "not a readable notebook" in report.results[0].message


def test_the_teachers_page_describes_every_exercise_and_is_in_the_toc():
    text = (ROOT / "book" / "teachers.md").read_text()
    named = set(re.findall(r"^\|[^|]*\| `([\w-]+/[\w-]+)` \|", text, re.M))
    exercises = {ex.name for p in CHAPTERS for ex in _exercises(p)}
    assert sorted(exercises - named) == [], "exercises missing from book/teachers.md"
    load_checks()
    assert sorted(named - set(CHECKS)) == [], "book/teachers.md names exercises that have no check"
    assert "book/teachers" in tidy.toc_files()
