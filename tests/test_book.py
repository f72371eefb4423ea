"""The shape of the book: the table of contents against notebooks/, how notebooks are stored, the
Colab cell, README's commands, the book's configuration and its citations."""
import re
import sys
from importlib.metadata import requires
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import tidy_notebooks as tidy  # noqa: E402
from readme_command import readme_command  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_every_notebook_is_in_the_toc_and_every_chapter_exists():
    mismatch = tidy.toc_mismatch()
    assert not mismatch, "\n".join(mismatch)


def test_every_prose_page_in_the_toc_exists():
    missing = [f for f in tidy.toc_files()
               if not f.startswith("notebooks/") and not (ROOT / f"{f}.md").is_file()]
    assert not missing, f"in _toc.yml without a page: {missing}"


def test_notebooks_are_stored_without_outputs_with_python3_and_the_colab_cell():
    found = [f"{p.name}: {problem}" for p in tidy.chapters()
             for problem in tidy.problems(nbformat.read(p, 4))]
    assert not found, "\n".join(found) + "\nfix with: python tools/tidy_notebooks.py --write"


def test_tidy_makes_a_notebook_clean_and_is_idempotent():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter"),
                                         nbformat.v4.new_code_cell("1 + 1", execution_count=3)])
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                  execution_count=3)]
    nb.metadata["kernelspec"] = {"name": "other", "display_name": "Other", "language": "python"}
    assert len(tidy.problems(nb)) == 3
    tidy.tidy(nb)
    assert tidy.problems(nb) == []
    first_id = nb.cells[0].id
    tidy.tidy(nb)  # a second pass replaces the Colab cell in place, same id
    assert len(nb.cells) == 3 and nb.cells[0].id == first_id and tidy.problems(nb) == []


def test_colab_cell_installs_from_the_configured_repository_and_keeps_colab_torch():
    from IPython.core.inputtransformer2 import TransformerManager

    src = tidy.colab_cell_source()
    url, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    assert f"git+{url}@{branch}" in src and 'if "google.colab" in sys.modules or source:' in src
    assert 'os.environ.get("POORVIT_COLAB_SOURCE", "")' in src    # CI installs a local checkout
    compile(TransformerManager().transform_cell(src), "colab-cell", "exec")  # valid IPython
    installed = re.findall(r'"([^"]+)"', src.split("%pip install", 1)[1])
    assert "--no-deps" in src and not any(re.match(r"torch(vision)?\b", p) for p in installed)


def test_colab_cell_brings_every_dependency_colab_lacks():
    deps = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower()
            for r in requires("poorvit") if "extra ==" not in r}
    extras = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in tidy.COLAB_EXTRAS}
    missing = deps - tidy.COLAB_PROVIDES - extras
    assert missing == set(), "add it to COLAB_EXTRAS in tools/tidy_notebooks.py"


def test_readme_commands_are_single_lines_that_install_then_test_or_build():
    test, book = readme_command("test-command"), readme_command("book-command")
    for command in (test, book):
        assert command.startswith("python3 -m venv .venv")
        assert "pip install -r requirements.txt" in command
    assert test.endswith("python -m pytest")
    assert book.endswith("jupyter-book build .")


def test_pytest_runs_unit_tests_before_notebooks():
    tomllib = pytest.importorskip("tomllib")
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests", "notebooks"]
    assert "--nbmake" in options["addopts"]


def test_book_configuration():
    execute = CONFIG["execute"]
    # a rebuild re-executes only changed notebooks; seconds per cell: the smoke scale fits easily
    assert execute["execute_notebooks"] == "cache"
    assert execute["timeout"] >= 600
    assert execute["allow_errors"] is False and execute["raise_on_error"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["only_build_toc_files"] is True
    assert all((ROOT / f).is_file() for f in CONFIG["bibtex_bibfiles"])
    assert "jupyter-book>=1.0.4,<2" in (ROOT / "requirements.txt").read_text().splitlines()


def test_every_citation_is_in_references_bib():
    bib = "\n".join((ROOT / f).read_text() for f in CONFIG["bibtex_bibfiles"])
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    assert len(keys) == len(re.findall(r"^@\w+\{", bib, re.M)), "a bibtex entry without a key"
    pages = [*(ROOT / "book").glob("*.md"), *tidy.chapters()]
    cited = {(p.name, key.strip()) for p in pages
             for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", p.read_text(encoding="utf-8"))
             for key in group.split(",")}
    assert sorted(f"{page}: {key}" for page, key in cited if key not in keys) == []


def test_readme_reading_path_names_the_core_and_its_size():
    """README's reading path lists the core modules in order, each with its size within 10 %."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- reading-path -->(.*?)<!-- /reading-path -->", text, re.S).group(1)
    rows = re.findall(r"\| `(poorvit/\w+\.py)` \| (\d[\d,]*) \|", block)
    assert [path for path, _ in rows] == [f"poorvit/{m}.py" for m in
                                          ("config", "tokens", "attention", "model", "train")]
    for path, stated in rows:
        actual = len((ROOT / path).read_text().splitlines())
        stated = int(stated.replace(",", ""))
        assert abs(actual - stated) <= 0.1 * actual, f"README: {path}: {stated} lines, not {actual}"
