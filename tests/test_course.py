"""`poorvit.course`: `import poorvit` leaves the course alone, and `setup()` takes exactly the
scales a chapter can run at, refusing the others with a message that names them."""
import subprocess
import sys

import pytest

from poorvit.config import NOTEBOOK_SCALES, SCALES
from poorvit.course import check_scale, setup


def test_import_poorvit_does_not_import_the_course():
    code = "import sys, poorvit; assert 'poorvit.course' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_course_imports_no_chapter():
    code = ("import sys, poorvit.course; "
            "assert not [m for m in sys.modules if m.startswith('poorvit.course.ch')]")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("scale", [s for s in SCALES if s not in NOTEBOOK_SCALES])
def test_setup_refuses_a_scale_chapters_cannot_run_at(scale, monkeypatch):
    with pytest.raises(ValueError) as err:
        setup(scale)
    message = str(err.value)
    assert all(s in message for s in NOTEBOOK_SCALES)
    assert "python -m poorvit train --preset cpu" in message
    monkeypatch.setenv("POORVIT_SCALE", scale)
    with pytest.raises(ValueError, match="Chapters take"):
        setup()


def test_every_notebook_scale_passes():
    for scale in NOTEBOOK_SCALES:
        check_scale(scale)
    assert "cpu" in SCALES and "cpu" not in NOTEBOOK_SCALES

