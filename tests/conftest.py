"""Helpers shared by the tests: one `assert_close` that prints the measured differences, and figures
closed after every test (the plotting tests open many)."""
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


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")
