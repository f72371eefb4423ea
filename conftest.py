"""What every `python -m pytest` run starts from, on any machine (this file sits at the root so
that `python -m pytest notebooks` reads it too): the notebooks at the `smoke` scale unless
`POORVIT_SCALE` is set, so a GPU machine does not switch them to `demo` (the notebooks at `demo`:
`POORVIT_SCALE=demo python -m pytest notebooks`). Set at import, before any kernel starts: nbmake's
kernels inherit the environment. The unit tests' device: tests/conftest.py."""
import os

os.environ.setdefault("POORVIT_SCALE", "smoke")
