"""The Colab path: chapters run where only what Colab ships is installed, plus what the Colab cell
installs. A fresh venv sees, through a .pth file, a folder of symlinks to just Colab's packages
(torch, torchvision, numpy, matplotlib, ipywidgets, tqdm, ipykernel and their own dependencies) from
this project's environment (nothing is downloaded; no myst-nb, no nbformat, no pyyaml...). Then
chapters 1 and 3 run in a kernel of that venv, at the smoke scale, from their first cell: the Colab
cell installs the package from this checkout (`POORVIT_COLAB_SOURCE`, a wheel built here) with
`--no-deps`, as it installs it from GitHub on Colab. lion-pytorch, which the cell also installs, is
given to the venv like Colab's packages (pip then finds it already satisfied: no network in CI).

Marked `colab` (pyproject.toml); it runs with the unit tests, about a minute on 2 cores."""
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB_SHIPS = ["torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm", "ipykernel"]
CELL_INSTALLS = ["lion-pytorch"]
CHAPTERS = ["01_images_to_tokens.ipynb", "03_first_vit.ipynb"]

pytestmark = pytest.mark.colab


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure(names: list[str]) -> dict[str, md.Distribution]:
    """The distributions `names` need in this environment (without extras), by name."""
    found, todo = {}, [n.lower() for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue                    # a requirement for another platform or python
        found[name] = dist
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker = req.split(";", 1)[1] if ";" in req else ""
            if marker and not _marker_holds(marker):
                continue
            todo.append(_name(req))
    return found


def _marker_holds(marker: str) -> bool:
    from packaging.markers import Marker
    return Marker(marker).evaluate({"extra": ""})


def colab_site(folder: Path, dists: dict[str, md.Distribution]) -> None:
    """Symlinks in `folder` to every top-level entry (package, module, .dist-info, .libs folder)
    of each distribution in `dists`."""
    folder.mkdir(parents=True)
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src, dst = base / top, folder / top
            if src.exists() and not dst.exists() and top != "__pycache__":
                dst.symlink_to(src)


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory) -> Path:
    """A venv's python that sees only Colab's packages (and pip), with a kernelspec."""
    root = tmp_path_factory.mktemp("colab")
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.check_output([python, "-c", code], text=True).strip())
    colab_site(root / "colab-packages", closure(COLAB_SHIPS + CELL_INSTALLS))
    (site / "colab.pth").write_text(str(root / "colab-packages") + "\n")
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """This checkout as a wheel (what the Colab cell installs from GitHub on Colab)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"                                # a copy: the build leaves nothing in ROOT
    shutil.copytree(ROOT / "poorvit", src / "poorvit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True)
    return next(out.glob("poorvit-*.whl"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The run cache of the chapters here: empty at first, then shared by them."""
    return tmp_path_factory.mktemp("runs")


def test_the_colab_like_venv_lacks_what_colab_lacks(colab_python):
    code = ("import importlib.util as u; "
            "print([m for m in ('torch', 'torchvision', 'matplotlib', 'ipywidgets', 'tqdm', "
            "'ipykernel', 'myst_nb', 'nbformat', 'poorvit', 'yaml') if u.find_spec(m)])")
    seen = subprocess.check_output([colab_python, "-c", code], text=True, cwd="/").strip()
    assert seen == str(["torch", "torchvision", "matplotlib", "ipywidgets", "tqdm", "ipykernel"])


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_runs_in_a_colab_like_venv(chapter, colab_python, wheel, runs, tmp_path,
                                             monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    specs = tmp_path / "kernels"
    (specs / "colab-like").mkdir(parents=True)
    (specs / "colab-like" / "kernel.json").write_text(
        '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        '"display_name": "colab-like", "language": "python"}' % colab_python)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))             # finds kernels/colab-like
    monkeypatch.setenv("POORVIT_COLAB_SOURCE", str(wheel))
    monkeypatch.setenv("POORVIT_SCALE", "smoke")
    monkeypatch.setenv("POORVIT_RUNS", str(runs))    # empty at first; shared as on Drive (setup.md)
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")                        # everything is here already
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    nb = nbformat.read(ROOT / "notebooks" / chapter, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="colab-like",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                 # raises CellExecutionError on any error
    installed = subprocess.check_output(
        [colab_python, "-c", "import poorvit; print(poorvit.__file__)"], text=True, cwd="/")
    assert installed.startswith(str(colab_python.parents[1])), installed   # from the wheel
