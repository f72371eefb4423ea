"""Keep the chapter notebooks in the shape the book and the tests expect.

Every notebook in notebooks/ is stored
* without outputs, execution counts or saved widget state,
* with the `python3` kernel,
* with code lines of at most MAX_LINE (90) characters: the book's code column holds 90 at a 1280 px
  window (_static/pages.css; .ci/check_pages.py fails a code block wider than its column),
* with the Colab cell first: on Colab it installs the course package from the repository whose URL
  `_config.yml` holds (the one place it is written); anywhere else it does nothing. Where
  `POORVIT_COLAB_SOURCE` is set (a local checkout's path, a wheel: what pip takes), it installs the
  package from there instead, on Colab or not (tests/test_colab.py runs the cell so in a Colab-like
  venv).

    python tools/tidy_notebooks.py --check    # what is out of shape or not in _toc.yml (exit 1)
    python tools/tidy_notebooks.py --write    # fix every notebook in place
    python tools/tidy_notebooks.py --write notebooks/03_first_vit.ipynb
    python tools/tidy_notebooks.py --cell             # print the Colab cell
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_TAGS = ["colab-setup", "remove-cell"]  # `remove-cell`: the book page does not show it
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# What the package needs beyond what Colab ships (torch, torchvision, numpy, matplotlib,
# ipywidgets, tqdm): installed with --no-deps so that pip never replaces Colab's own torch.
COLAB_PROVIDES = {"torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm"}
COLAB_EXTRAS = ["lion-pytorch>=0.2"]


def repository() -> tuple[str, str]:
    """The repository URL and branch, from `_config.yml`."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


MAX_LINE = 90   # characters per code line: what the book's code column shows at 1280 px
COLAB_SOURCE_VAR = "POORVIT_COLAB_SOURCE"   # what pip installs instead: a checkout's path, a wheel


def colab_cell_source() -> str:
    url, branch = repository()
    extras = " ".join(f'"{p}"' for p in COLAB_EXTRAS)
    return (
        "# On Colab: install the course package (Colab's own torch is kept). "
        "Elsewhere: nothing to do,\n"
        "# the package comes from `pip install -r requirements.txt` (see the Setup page).\n"
        f"# ${COLAB_SOURCE_VAR} (a local checkout) installs it from there instead.\n"
        "import os\n"
        "import sys\n"
        "\n"
        f'source = os.environ.get("{COLAB_SOURCE_VAR}", "")\n'
        'if "google.colab" in sys.modules or source:\n'
        f'    source = source or "poorvit @ git+{url}@{branch}"\n'
        f'    %pip install -q --no-deps "{{source}}" {extras}'
    )


def colab_cell() -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(colab_cell_source(), metadata={"tags": list(COLAB_TAGS)})


def chapters() -> list[Path]:
    """The notebooks in notebooks/, sorted by name (= reading order)."""
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files() -> list[str]:
    """Every page in `_toc.yml`, root first, as written there (no suffix): "book/intro",
    "notebooks/..."."""
    def walk(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("sections", []))

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [toc["root"], *(f for part in parts for f in walk(part.get("chapters", [])))]


def toc_mismatch() -> list[str]:
    """Notebooks missing from `_toc.yml`, and chapters in `_toc.yml` with no notebook."""
    listed = {f for f in toc_files() if f.startswith("notebooks/")}
    stored = {f"notebooks/{p.stem}" for p in chapters()}
    return ([f"{f}.ipynb is not in _toc.yml" for f in sorted(stored - listed)]
            + [f"{f} is in _toc.yml but notebooks/ has no such notebook"
               for f in sorted(listed - stored)])


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is out of shape in one notebook (an empty list when it is tidy)."""
    found = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("kernel is not python3")
    if "widgets" in nb.metadata:
        found.append("saved widget state in the notebook metadata")
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "code" or first.source != colab_cell_source() \
            or first.metadata.get("tags") != COLAB_TAGS:
        found.append("first cell is not the Colab cell (run tools/tidy_notebooks.py --write)")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None
                                         or "execution" in cell.metadata):
            found.append(f"cell {i} holds outputs or an execution record")
        hidden = {"remove-cell", "remove-input"} & set(cell.metadata.get("tags", []))
        if cell.cell_type == "code" and not hidden:   # code the page shows (not the Colab cell)
            for n, line in enumerate(cell.source.splitlines(), 1):
                if len(line) > MAX_LINE:
                    found.append(f"cell {i} (id {cell.get('id', '?')}) line {n}: {len(line)} "
                                 f"characters, at most {MAX_LINE}: {line.strip()[:40]}...")
    return found


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip outputs, set the kernel, put the current Colab cell first. Changes `nb` in place."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timings nbclient records
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cells carry ids from 4.5 on
    if nb.cells and "colab-setup" in nb.cells[0].metadata.get("tags", []):
        cell = colab_cell()
        cell.id = nb.cells[0].get("id", cell.id)  # keep the id: no churn in diffs
        nb.cells[0] = cell
    else:
        nb.cells.insert(0, colab_cell())
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report notebooks out of shape")
    mode.add_argument("--write", action="store_true", help="fix notebooks in place")
    mode.add_argument("--cell", action="store_true", help="print the Colab cell")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)
    if args.cell:
        print(colab_cell_source())
        return 0
    bad = 0
    if not args.notebooks:
        for problem in toc_mismatch():
            bad += 1
            print(problem)
    for path in args.notebooks or chapters():
        nb = nbformat.read(path, as_version=4)
        if args.write:
            nbformat.write(tidy(nb), path)
        for problem in problems(nb):
            bad += 1
            print(f"{os.path.relpath(path)}: {problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
