"""What every `python -m pytest` run starts from, on any machine (this file sits at the root so
that `python -m pytest notebooks` reads it too).

* The notebooks run at the `smoke` scale unless `POORVIT_SCALE` is set, so a GPU machine does not
  switch them to `demo` (the notebooks at `demo`: `POORVIT_SCALE=demo python -m pytest notebooks`).
  Set at import, before any kernel starts: nbmake's kernels inherit the environment.
* Before each notebook's kernel starts, the chapter it is (`POORVIT_CHAPTER`, the notebook's name)
  and this execution (`POORVIT_CHAPTER_RUN`, the time it started) go into that environment, so that
  every training the chapter runs is noted in the run folder's ledger (`poorvit.ledger`); after it,
  the notebook's wall time and whether it passed. `python -m poorvit chapters` turns the ledger into
  each chapter's time at each scale.

The unit tests' device and helpers: tests/conftest.py. (One conftest here rather than one in
notebooks/: test modules import `from conftest import assert_close`, and a second module named
conftest beside the notebooks would shadow tests/conftest.py.)"""
import os
import time

import pytest

os.environ.setdefault("POORVIT_SCALE", "smoke")


def _notebook(item) -> str | None:
    path = str(getattr(item, "filename", "") or getattr(item, "path", ""))
    return os.path.splitext(os.path.basename(path))[0] if path.endswith(".ipynb") else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    chapter = _notebook(item)
    if chapter is None:
        yield
        return
    from poorvit.ledger import CHAPTER_ENV, EXECUTION_ENV, note_chapter, stamp
    saved = {k: os.environ.get(k) for k in (CHAPTER_ENV, EXECUTION_ENV)}
    execution = stamp()
    os.environ[CHAPTER_ENV], os.environ[EXECUTION_ENV] = chapter, execution
    t0 = time.perf_counter()
    try:
        outcome = yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    note_chapter(chapter, execution, time.perf_counter() - t0, outcome.excinfo is None)
