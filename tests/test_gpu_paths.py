"""The CUDA paths, as far as a CPU-only machine can check them: the precision chosen on a simulated
T4 (compute capability 7.5: float16 + gradient scaler) and A100 (8.0: bfloat16, TF32), the TF32
flags set in one place and recorded, the frozen whitening hooks under fake CUDA tensors
(`FakeTensorMode`), torchrun's device and backend as a pure function, float16 autocast with a
gradient scaler on the CPU, resuming a checkpoint without scaler state where float16 runs, and the
tests' own device and scale.

The GPU is simulated by monkeypatching `torch.cuda` (is_available, get_device_capability and
is_bf16_supported, which answers True on a T4 too: bfloat16 emulated)."""
import os

import pytest
import torch
import torch.distributed as dist
from torch._subclasses.fake_tensor import FakeTensorMode

from poorvit import device as D
from poorvit.config import default_scale, get_config, get_train_config
from poorvit.init import whiten_patch_embed
from poorvit.model import ViT
import poorvit.train as T


T4, A100 = (7, 5), (8, 0)


@pytest.fixture
def gpu(monkeypatch):
    """`gpu(capability)`: torch.cuda answers as on one visible GPU of that compute capability."""
    def simulate(capability: tuple[int, int], count: int = 1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return simulate


@pytest.fixture
def restore_backends():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark)
    yield
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.benchmark) = saved


# --- precision: bfloat16 only where native ------------------------------------------------------

def test_a_t4_trains_in_float16_with_a_scaler_not_emulated_bfloat16(gpu):
    gpu(T4)
    assert D.autocast_dtype("auto", "cuda") == torch.float16
    assert D.fast_precisions("cuda") == ["fp32", "fp16"]


def test_an_a100_trains_in_bfloat16(gpu):
    gpu(A100)
    assert D.autocast_dtype("auto", "cuda") == torch.bfloat16
    assert D.fast_precisions("cuda") == ["fp32", "bf16", "fp16"]
    assert D.autocast_dtype("auto", "cpu") is None and D.autocast_dtype("fp16", "cuda") is not None


def test_chapter_9_measures_what_the_gpu_computes_natively(gpu):
    from poorvit.course import ch09_profiling as ch9
    gpu(T4)
    assert "bf16" not in D.fast_precisions(torch.device("cuda", 0))
    assert ch9.fast_precisions is D.fast_precisions     # the chapter asks the one function


def test_tf32_is_set_in_one_place_on_ampere_and_off_before(gpu, restore_backends):
    gpu(A100)
    flags = D.configure_backends("cuda")
    assert flags["tf32_matmul"] and flags["tf32_cudnn"] and torch.backends.cudnn.allow_tf32
    gpu(T4)
    flags = D.configure_backends("cuda")
    assert not flags["tf32_matmul"] and not torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    assert D.configure_backends("cpu")["tf32_matmul"]    # a CPU run changes nothing


def test_the_run_record_holds_the_backend_flags_and_the_autocast_dtype(tmp_path):
    from poorvit.data import load_cifar10
    data = load_cifar10()
    cfg = get_train_config("smoke", epochs=1, batch_size=64, train_subset=128, test_subset=100,
                           warmup_epochs=0.0)
    run = T.train(get_config("micro"), cfg, data, out=tmp_path / "run", progress=None,
                  device="cpu")
    assert run.record["backends"] == D.backend_flags()
    assert run.record["autocast_dtype"] == "float32"


# --- float16 autocast and the gradient scaler, on the CPU ---------------------------------------

def micro_step(precision: str = "auto", **kw) -> "T.TrainStep":
    torch.manual_seed(0)
    cfg = get_train_config("smoke", precision=precision, label_smoothing=0.0, **kw)
    return T.TrainStep(ViT(get_config("micro")), cfg, "cpu")


def test_float16_autocast_with_a_gradient_scaler_steps_on_the_cpu():
    step = micro_step("fp16", grad_clip=1.0)
    assert step.dtype == torch.float16 and step.scaler.is_enabled()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in step.model.parameters()]
    loss, logits = step(x, y)
    assert logits.dtype == torch.float16 and loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert step.scaler.get_scale() > 0 and step.scaler.state_dict()["scale"] > 0
    moved = sum(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert moved > len(before) // 2


# --- resume across devices ----------------------------------------------------------------------

def test_a_cpu_checkpoint_resumes_where_auto_means_float16(tmp_path, monkeypatch):
    """Saved on a CPU (no scaler state), resumed on a T4 (auto -> float16): a fresh scaler."""
    model_cfg, train_cfg = get_config("micro"), get_train_config("smoke", label_smoothing=0.0)
    saved = micro_step()
    assert saved.dtype is None and saved.scaler.state_dict() == {}
    ckpt = tmp_path / "checkpoint.pt"
    T._save_checkpoint(saved, T._Progress([], 1, 5, 2.0), model_cfg, train_cfg, ckpt)
    monkeypatch.setattr(T, "autocast_dtype", lambda precision, device: torch.float16)
    resumed = micro_step()
    assert resumed.scaler.is_enabled()
    state = T._resume(resumed, ckpt, model_cfg, train_cfg, say=False)
    assert (state.epoch, state.step) == (1, 5)
    for a, b in zip(saved.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    loss, _ = resumed(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    assert torch.isfinite(loss)


def test_a_float16_checkpoint_resumes_on_the_cpu_in_float32(tmp_path):
    step = micro_step("fp16")
    step(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    state = step.state_dict()
    assert state["scaler"]
    cpu = micro_step("fp32")
    cpu.load_state_dict(state)
    assert not cpu.scaler.is_enabled()


# --- frozen whitening under fake CUDA tensors ---------------------------------------------------

def test_frozen_whitening_hooks_follow_the_parameters_to_the_gpu():
    """The hooks registered on the CPU run on CUDA gradients once the model moves: under fake CUDA
    tensors every parameter lands on CUDA, the forward runs there, and each hook returns a CUDA
    gradient (the mask made on the CPU before the move raised a device mismatch)."""
    torch.manual_seed(0)
    model = ViT(get_config("micro"))
    whiten_patch_embed(model, torch.randn(16, 3, 32, 32), freeze=True)
    conv = model.tokens.patch.proj
    k = model.tokens.patch.frozen_channels
    hooks = [(p, h) for p in (conv.weight, conv.bias) for h in p._backward_hooks.values()]
    assert len(hooks) == 2 and k > 0
    for p, hook in hooks:                        # on the CPU: the first k rows are zeroed
        g = hook(torch.ones_like(p))
        assert g[:k].abs().sum() == 0 and torch.equal(g[k:], torch.ones_like(p)[k:])
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to("cuda")
        assert {p.device.type for p in model.parameters()} == {"cuda"}
        assert {b.device.type for b in model.buffers()} <= {"cuda"}
        assert model(torch.randn(4, 3, 32, 32, device="cuda")).device.type == "cuda"
        for p, hook in hooks:
            g = hook(torch.ones(p.shape, device="cuda"))
            assert g.device.type == "cuda" and g.shape == p.shape


# --- torchrun: the device and the backend -------------------------------------------------------

RUN2 = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}


@pytest.mark.parametrize("env, device, n_cuda, want", [
    ({}, None, 2, None),                                       # not under torchrun
    ({"WORLD_SIZE": "1"}, "cuda", 2, None),
    (RUN2, None, 2, ("cuda:1", "nccl")),                        # one GPU per process
    (RUN2, None, 0, ("cpu", "gloo")),                           # no GPU: gloo
    (RUN2, "cpu", 2, ("cpu", "gloo")),                          # --device cpu: never NCCL
    (RUN2, "cuda", 2, ("cuda:1", "nccl")),
    ({**RUN2, "LOCAL_RANK": "0"}, "cuda:1", 2, ("cuda:1", "nccl")),
])
def test_torchrun_device_and_backend(env, device, n_cuda, want):
    plan = D.distributed_plan(env, device, n_cuda)
    assert (plan if plan is None else (str(plan[0]), plan[1])) == want


@pytest.mark.parametrize("device", [None, "cuda"])
def test_torchrun_with_more_processes_than_gpus_says_what_to_do(device):
    with pytest.raises(ValueError, match="nproc_per_node.*--device cpu"):
        D.distributed_plan(RUN2, device, 1)                   # two processes, one GPU


def test_torchrun_sets_the_device_before_the_process_group(gpu, monkeypatch):
    gpu(A100, count=2)
    calls = []
    monkeypatch.setattr(os, "environ", {**os.environ, **RUN2})
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kw: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert D.init_distributed(None) == (1, 2, torch.device("cuda", 1))
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]
    calls.clear()
    assert D.init_distributed("cpu") == (1, 2, torch.device("cpu"))
    assert calls == [("init", "gloo")]


# --- the tests' own device and scale ------------------------------------------------------------

def test_unit_tests_run_on_the_cpu_even_where_a_gpu_is_visible(gpu, monkeypatch):
    if os.environ.get("POORVIT_TEST_GPU") == "1":
        pytest.skip("POORVIT_TEST_GPU=1 asks for the GPU")
    assert os.environ.get("POORVIT_DEVICE") == "cpu"           # tests/conftest.py
    gpu(A100)
    assert D.get_device(None) == torch.device("cpu")
    monkeypatch.delenv("POORVIT_SCALE", raising=False)
    assert default_scale() == "smoke"                          # not demo: the device is the CPU
    monkeypatch.delenv("POORVIT_DEVICE")
    assert D.get_device(None) == torch.device("cuda") and default_scale() == "demo"


def test_the_notebooks_default_to_smoke():
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "POORVIT_SCALE"}
    code = "import conftest, os; print(os.environ['POORVIT_SCALE'])"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True)
    assert out.stdout.strip() == "smoke", out.stderr


# --- `python -m poorvit bench gpu --tiny`: the GPU check's dry run on the CPU -------------------

def test_bench_gpu_tiny_runs_every_check_on_the_cpu(tmp_path):
    """The whole check on the CPU, one compiled step of the micro model included (inductor's CPU
    backend: about 35 s with a warm inductor cache, 110 s cold, on one shared core; its losses held
    equal to the eager step's by the check itself)."""
    import json
    import subprocess
    import sys
    record = tmp_path / "gpu.json"
    out = subprocess.run([sys.executable, "-m", "poorvit", "bench", "gpu", "--tiny", "--save",
                          str(record)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    rec = json.loads(record.read_text())
    status = {r["check"]: r["status"] for r in rec["checks"]}
    assert rec["device_name"].startswith("CPU") and rec["tiny"] and rec["passed"]
    assert status["precision fp16 + GradScaler"] == "PASS"
    assert status["resume fp32 -> fp16"] == "PASS"
    assert status["torch.compile step"] == "PASS"                  # compiled == eager, on the CPU
    from poorvit.ledger import RATE_CHECK
    assert RATE_CHECK in status         # the row whose measured rate poorvit.ledger reads
    assert all(s in ("PASS", "SKIP") for s in status.values()), status
    assert all(r["detail"] for r in rec["checks"] if r["status"] == "SKIP")   # a reason each
    for name in status:
        assert f"{status[name]:4}  {name}" in out.stdout


# --- a whole training step under fake CUDA tensors ----------------------------------------------

def _placed(step: "T.TrainStep") -> dict[str, set[str]]:
    """The device types of every tensor a training step keeps: parameters, buffers, gradients,
    optimizer state, the gradient scaler's state."""
    opt_state = [v for s in step.optimizer.state.values() for v in s.values()
                 if isinstance(v, torch.Tensor)]
    scaler = [t for t in (getattr(step.scaler, "_scale", None),
                          getattr(step.scaler, "_growth_tracker", None)) if t is not None]
    return {"parameters": {p.device.type for p in step.model.parameters()},
            "buffers": {b.device.type for b in step.model.buffers()},
            "gradients": {p.grad.device.type for p in step.model.parameters()
                          if p.grad is not None},
            "optimizer state": {t.device.type for t in opt_state},
            "scaler": {t.device.type for t in scaler}}


@pytest.mark.parametrize("gpu_kind, optimizer, dtype", [
    (T4, "adamw", torch.float16),        # float16 + GradScaler, fused AdamW
    (A100, "lion", torch.bfloat16),      # bfloat16, Lion (lion-pytorch)
])
def test_a_whole_train_step_keeps_every_tensor_on_the_gpu(gpu_kind, optimizer, dtype, gpu,
                                                          restore_backends):
    """`train.TrainStep` of the micro model with frozen whitening, on fake CUDA tensors: the
    forward in the autocast dtype the GPU gets, the scaled loss, gradients through the frozen
    rows' hooks, clipping, the optimizer step and the scaler's update leave every parameter,
    buffer, gradient, optimizer state and scaler state on CUDA (a tensor made on the CPU inside
    any of them raises a device mismatch under FakeTensorMode, as on a real GPU). Autograd's engine
    needs a real CUDA context, so each gradient is set as backward leaves it: through the
    parameter's hooks."""
    torch.manual_seed(0)
    model = ViT(get_config("micro"))
    whiten_patch_embed(model, torch.randn(16, 3, 32, 32), freeze=True)
    # moved under FakeTensorMode a parameter is a new object: its hooks are taken from before
    hooks = {name: list(p._backward_hooks.values()) for name, p in model.named_parameters()
             if p._backward_hooks}
    assert len(hooks) == 2                                  # the frozen rows' weight and bias
    cfg = get_train_config("smoke", optimizer=optimizer, grad_clip=1.0)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to("cuda")
        gpu(gpu_kind)
        step = T.TrainStep(model, cfg, "cuda")
        assert step.dtype == dtype and step.scaler.is_enabled() == (dtype == torch.float16)
        x = torch.randn(8, 3, 32, 32, device="cuda")
        y = torch.randint(0, 10, (8,), device="cuda")
        loss, logits = step.forward(x, y)
        assert loss.device.type == "cuda" and logits.dtype == dtype and loss.dtype == torch.float32
        assert step.scaler.scale(loss).device.type == "cuda"
        for name, p in model.named_parameters():
            g = torch.ones(p.shape, device="cuda")
            for hook in hooks.get(name, ()):
                g = hook(g)
            p.grad = g
        grads = _placed(step)["gradients"]
        step.optimizer_step()
        placed = {**_placed(step), "gradients": grads}
    assert placed.pop("buffers") <= {"cuda"}                # the micro model has none
    if not step.scaler.is_enabled():
        assert placed.pop("scaler") == set()
    assert step.optimizer.state and all(v == {"cuda"} for v in placed.values()), placed
