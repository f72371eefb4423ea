"""Helpers shared by the tests: one `assert_close` that prints the measured differences, figures
closed after every test (the plotting tests open many), and the CPU as the unit tests' device on any
machine (`POORVIT_DEVICE=cpu`, read by `device.default_device()`: the bitwise checks are CPU checks)
unless `POORVIT_TEST_GPU=1` asks for the GPU."""
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4,
                 what: str = "") -> None:
    """`torch.testing.assert_close`, printing the max and mean difference first (`pytest -s`
    shows them)."""
    diff = (a - b).abs()
    print(f"{what}: max diff {diff.max().item():.2e}, mean diff {diff.mean().item():.2e}")
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


@pytest.fixture(autouse=True, scope="session")
def cpu_unless_gpu_asked():
    """`POORVIT_DEVICE=cpu` for the whole test session (subprocesses inherit it), unless
    `POORVIT_TEST_GPU=1`."""
    if os.environ.get("POORVIT_TEST_GPU", "").strip() == "1":
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POORVIT_DEVICE", "cpu")
        yield


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")
