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


def test_tidy_check_fails_a_code_line_wider_than_the_page_and_names_it():
    """90 characters fit the book's code column at 1280 px (_static/pages.css); the Colab cell,
    removed from the page, is exempt."""
    nb = tidy.tidy(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1  # " + "a" * 81),                  # 90: fits
        nbformat.v4.new_code_cell("y = 2\nz = 3  # " + "b" * 82)]))        # 91 on line 2
    found = tidy.problems(nb)
    assert len(found) == 1 and found[0].startswith("cell 2 (id ")
    assert "line 2: 91 characters" in found[0]
    assert max(map(len, tidy.colab_cell_source().splitlines())) > tidy.MAX_LINE  # exempt, not short


def test_an_explorer_is_a_live_widget_in_jupyter_and_a_figure_on_the_page():
    """The display bundle holds the widget view and a PNG of the first view; the book's html
    builder drops the widget view (nothing can run it there), so the page shows the PNG."""
    import base64

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from poorvit.course.widgets import WIDGET_VIEW, explorer

    def draw(n):
        plt.subplots(figsize=(4, 2))[1].plot(range(n))
        print("printed text stays off the figure")
        plt.show()

    w = explorer(draw, n=W.IntSlider(value=3, min=2, max=9))
    open_before = set(plt.get_fignums())
    bundle = w._repr_mimebundle_()
    assert set(plt.get_fignums()) == open_before                  # the static view's figure closed
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and WIDGET_VIEW in bundle and "n=3" in bundle["text/plain"]
    width = int.from_bytes(png[16:20], "big")                        # IHDR: 4 in at the figure dpi
    assert 300 <= width <= 4 * plt.rcParams["figure.dpi"] + 10
    plt.close("all")
    overrides = CONFIG["sphinx"]["config"]["nb_mime_priority_overrides"]
    assert ["html", WIDGET_VIEW, None] in overrides


def test_the_course_plots_fit_the_book_column():
    """The generic plots stay within plots.MAX_WIDTH (10 in, shown at >= 69 % at 1280 px) however
    many panels they are asked for: grids shrink their panels, single plots stop growing."""
    import matplotlib.pyplot as plt
    import torch

    from poorvit.course import plots

    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    figures = [plots.image_grid(images, ncols=12),
               plots.class_grid(images, torch.arange(24) % 2, ["a", "b"], per_class=12),
               plots.attention_compare(images[:12], {"last": torch.rand(12, 64)}),
               plots.curves({"run": [{"epoch": 1, "loss": 2.0, "test_acc": 0.3, "lr": 1e-3}]},
                            keys=("loss", "test_acc", "lr"))[0].figure,
               plots.bars({str(i): i for i in range(20)}, "value").figure,
               plots.filters_grid(torch.randn(48, 3, 4, 4), ncols=24).figure]
    widths = [fig.get_size_inches()[0] for fig in figures]
    plt.close("all")
    assert max(widths) <= plots.MAX_WIDTH + 1e-9 and min(widths) > 3, widths
