"""What the course promises when things go wrong (book/reliability.md): an error the user caused is
one line and exit status 2 from every command (data, checkpoints, run folders), `--debug` shows the
traceback, Ctrl-C says where the run resumes; configs hold plain values, so a run configured from
numpy resumes with `weights_only=True`; DDP ranks draw their own regulariser masks; a warmup as
long as the run is refused; every mode change is restored on any exit; images are taken as
documented or refused; exercise checks never trust the answer's own comparison; positions follow
the image size.

These tests read CIFAR-10 from POORVIT_DATA (downloaded on first use where there is internet)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from poorvit.config import PRESETS, SCALES, get_config, get_train_config, scale_model
from poorvit.data import RECORD, RECORDS_PER_FILE, TEST_FILE, TRAIN_FILES, load_cifar10, normalize
from poorvit.model import ViT
import poorvit.train as T

ROOT = Path(__file__).resolve().parents[1]
MICRO = ["train", "--preset", "micro", "--scale", "smoke", "--set", "train_subset=512",
         "--set", "test_subset=500", "--set", "batch_size=64", "--device", "cpu"]


@pytest.fixture(scope="module")
def data():
    return load_cifar10()


def cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """`python -m poorvit ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "poorvit", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def assert_one_line(out: subprocess.CompletedProcess, status: int = 2, *fragments: str) -> str:
    """The command failed with `status`, one line on stderr, no traceback; the line."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == status, out.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---- one line, exit status 2: data, checkpoints, run folders; --debug; Ctrl-C ------------------

def _truncated_copy(tmp_path: Path) -> Path:
    """A data folder in the official layout whose first training file is cut short (no download:
    the files are there)."""
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in [*TRAIN_FILES, TEST_FILE]:
        (folder / name).write_bytes(bytes(RECORD * RECORDS_PER_FILE))
    (folder / TRAIN_FILES[0]).write_bytes(bytes(1000))
    return tmp_path / "data"


def test_bad_data_is_one_line_from_the_command(tmp_path):
    truncated = _truncated_copy(tmp_path)
    assert_one_line(cli(*MICRO, "--data", str(truncated), "--out", str(tmp_path / "runs")), 2,
                    "error: ", "has 1,000 bytes", "delete the folder")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "cifar-10-binary.tar.gz").write_bytes(b"not an archive")
    assert_one_line(cli(*MICRO, "--data", str(corrupt), "--out", str(tmp_path / "runs")), 2,
                    "is corrupt or incomplete", "Delete it and run again")


def test_debug_shows_the_traceback(tmp_path):
    truncated = _truncated_copy(tmp_path)
    for args, env in (((), {"POORVIT_DEBUG": "1"}), (("--debug",), {})):
        out = cli(*args, *MICRO, "--data", str(truncated), "--out", str(tmp_path / "r"), env=env)
        assert out.returncode == 1 and "Traceback" in out.stderr and "DatasetError" in out.stderr


def _run_folder(args: list[str], out: Path, data) -> Path:
    """The run folder `python -m poorvit ARGS --out OUT` trains in."""
    from poorvit.cli import build_parser
    from poorvit.cli.train import configs
    from poorvit.runs import run_key
    parsed = build_parser().parse_args([*args, "--out", str(out)])
    model_cfg, train_cfg = configs(parsed)
    return out / f"{parsed.preset}-{train_cfg.scale}-{run_key(model_cfg, train_cfg, data.label)}"


@pytest.mark.parametrize("content", ["garbage", "numpy", "foreign"])
def test_a_bad_checkpoint_is_one_line_from_the_command(content, data, tmp_path):
    args = [*MICRO, "--set", "epochs=1"]
    folder = _run_folder(args, tmp_path, data)
    folder.mkdir(parents=True)
    ckpt = folder / "checkpoint.pt"
    if content == "garbage":
        ckpt.write_bytes(b"\x80\x02 this is not a checkpoint")
    elif content == "numpy":            # would run numpy's unpickling: weights_only refuses it
        torch.save({"model_cfg": {}, "train_cfg": {}, "lr": np.float64(1e-3)}, ckpt)
    else:
        torch.save({"model_cfg": {"n_embd": 1}, "train_cfg": {}}, ckpt)
    out = cli(*args, "--data", str(Path(data.folder).parent), "--out", str(tmp_path))
    line = assert_one_line(out, 2, "error: ", str(ckpt), "--fresh")
    assert ("different configuration" in line) == (content == "foreign"), line


def test_a_run_folder_of_another_config_is_refused_not_overwritten(data, tmp_path):
    cfg = dict(epochs=1, batch_size=64, warmup_epochs=0.2, train_subset=256, test_subset=100)
    first = T.train(get_config("micro"), get_train_config("smoke", **cfg), data,
                    out=tmp_path / "r", progress=None)
    before = (tmp_path / "r" / "record.json").read_text()
    with pytest.raises(ValueError, match="finished run of another configuration.*--fresh"):
        T.train(get_config("micro"), get_train_config("smoke", **cfg, lr=1e-4), data,
                out=tmp_path / "r", progress=None)
    assert (tmp_path / "r" / "record.json").read_text() == before
    assert json.loads(before)["key"] == first.record["key"]


def test_ctrl_c_says_where_the_run_resumes(data, tmp_path):
    args = [*MICRO, "--set", "epochs=200", "--set", "train_subset=256"]
    ckpt = _run_folder(args, tmp_path, data) / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-m", "poorvit", *args, "--out", str(tmp_path),
                             "--data", str(Path(data.folder).parent)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), proc.communicate(timeout=60)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_one_line(out, 130, "interrupted: ", f"resumes from {ckpt}", "(after epoch ",
                    "same command")


# ---- configs hold plain values: a run configured from numpy resumes with weights_only -----------

def test_a_run_configured_from_numpy_resumes(data, tmp_path):
    lr = np.logspace(-3, -2, 3)[0]                               # numpy.float64
    plain = dict(epochs=2, batch_size=64, warmup_epochs=0.2, train_subset=512, test_subset=100)
    numpy_cfg = get_train_config("smoke", **plain, lr=lr, seed=np.int64(0),
                                 weight_decay=torch.tensor(0.05, dtype=torch.float64))
    model_cfg = get_config("micro", n_embd=np.int64(32))
    for cfg in (numpy_cfg, model_cfg):
        for k, v in vars(cfg).items():
            assert type(v).__module__ == "builtins", (k, type(v))
    assert numpy_cfg == get_train_config("smoke", **plain, lr=float(lr))

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.train(model_cfg, numpy_cfg, data, [stop], out=tmp_path / "r", progress=None)
    torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)   # safe loading reads it
    resumed = T.train(model_cfg, numpy_cfg, data, out=tmp_path / "r", progress=None)
    straight = T.train(get_config("micro"), get_train_config("smoke", **plain, lr=float(lr)), data,
                       out=tmp_path / "s", progress=None)
    assert len(resumed.history) == 2
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


# ---- every DDP rank draws its own masks --------------------------------------------------------

RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import poorvit.model as M
    from poorvit.config import get_config, get_train_config
    from poorvit.train import train
    masks = {"drop_path": [], "patch_dropout": []}
    real_drop, real_patch = M.drop_path, M.patch_dropout

    def drop_path(x, p, training):
        out = real_drop(x, p, training)
        if training and p:
            masks["drop_path"].append((out.flatten(1).abs().sum(1) != 0).int().tolist())
        return out

    def patch_dropout(x, p, n_cls, training):
        out = real_patch(x, p, n_cls, training)
        if training and p:   # which patch tokens were kept: the kept rows equal their source rows
            same = (out[:, n_cls:, None] == x[:, None, n_cls:]).all(-1)
            masks["patch_dropout"].append(same.float().argmax(-1).tolist())
        return out

    M.drop_path, M.patch_dropout = drop_path, patch_dropout
    cfg = get_train_config("smoke", epochs=1, batch_size=64, warmup_epochs=0.2,
                           train_subset=128, test_subset=100)
    train(get_config("micro", drop_path=0.5, patch_drop=0.5), cfg, out=sys.argv[1],
          progress=None, device="cpu")
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[2], f"masks-{rank}.json"), "w") as f:
        json.dump(masks, f)
""")


def test_ddp_ranks_draw_different_masks(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(script), str(tmp_path / "run"),
                          str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    m0, m1 = (json.loads((tmp_path / f"masks-{r}.json").read_text()) for r in (0, 1))
    for kind in ("drop_path", "patch_dropout"):
        assert m0[kind] and len(m0[kind]) == len(m1[kind]), kind
        assert m0[kind] != m1[kind], f"{kind}: both ranks drew the same masks"


def test_regulariser_seeds_are_per_rank_and_unchanged_for_one_process():
    seeds = {T.regulariser_seed(3, e, r) % 2 ** 32 for e in range(1000) for r in range(64)}
    assert len(seeds) == 64_000           # no two (epoch, rank) collide in the 32 bits torch reads
    assert T.regulariser_seed(3, 7) == T.regulariser_seed(3, 7, 0) == 3007   # as it was


# ---- a schedule that cannot do what it says is refused ------------------------------------------

def test_warmup_as_long_as_the_run_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"warmup_epochs=10 .*epochs=5.*lower warmup_epochs"):
        get_train_config("paper", epochs=5)
    with pytest.raises(ValueError, match="warmup_epochs"):
        get_train_config("cpu", epochs=2)                          # timed: warmup 3 of 2 epochs
    for scale in SCALES:                                           # every recipe still holds
        get_train_config(scale)
        scale_model(scale)
    for preset in PRESETS:
        get_config(preset)


# ---- mode changes: restored on any exit ---------------------------------------------------------

class Boom(RuntimeError):
    pass


def _exploding_model(n_cls: int = 2) -> ViT:
    """A micro model in train mode whose last block raises in the forward."""
    model = ViT(get_config("micro", n_cls=n_cls)).train()

    def explode(*args, **kwargs):
        raise Boom("inside")

    model.blocks[-1].mlp.forward = explode
    return model


def test_every_mode_change_is_restored_when_an_exception_escapes():
    from poorvit.cost import flops_per_image
    from poorvit.course import ch08_class_tokens as ch
    from poorvit.data import DeviceLoader

    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.zeros(4, dtype=torch.long), 4, False)
    calls = {
        "evaluate": lambda m: T.evaluate(m, loader),
        "predict": lambda m: T.predict(m, images),
        "attention_maps": lambda m: m.attention_maps(normalize(images)),
        "flops_per_image": lambda m: flops_per_image(m),
        "class_token_similarity": lambda m: ch.class_token_similarity(m, normalize(images)),
        "class_token_attention": lambda m: ch.class_token_attention(m, normalize(images)),
    }
    for name, call in calls.items():
        model = _exploding_model()
        with pytest.raises(Boom):
            call(model)
        assert all(m.training for m in model.modules()), name
    from poorvit.model import eval_mode
    model = ViT(get_config("micro")).train()
    model.head.eval()                                 # a submodule's own mode comes back too
    with pytest.raises(Boom), eval_mode(model):
        assert not model.training and not model.blocks[0].training
        raise Boom
    assert model.training and model.blocks[0].training and not model.head.training


# ---- images: taken as documented, raw float pixels refused --------------------------------------

def test_predict_takes_uint8_and_standardized_images_and_refuses_raw_floats(data):
    model = ViT(get_config("micro")).eval()
    x = data.test_x[:16]
    probs = T.predict(model, x)
    torch.testing.assert_close(T.predict(model, normalize(x)), probs)
    for raw, shown in ((x.float() / 255, "[0, 1]"), (x.float(), "[0, 255]")):
        with pytest.raises(ValueError, match=r"look like raw pixels.*poorvit\.data\.normalize"):
            T.predict(model, raw)
        with pytest.raises(ValueError, match="normalize"):
            model.attention_maps(raw)
    assert model.attention_maps(x).shape == model.attention_maps(normalize(x)).shape


def test_the_raw_pixel_rule_never_refuses_a_standardized_cifar_image(data):
    """`data.model_input` refuses floats with no negative value and a maximum <= 1 or above the
    largest standardized value; no CIFAR-10 image, standardized, is refused on its own."""
    from poorvit.data import _STANDARD_MAX
    for images in (data.test_x, data.train_x[:20_000]):
        z = normalize(images).flatten(1)
        lo, hi = z.min(1).values, z.max(1).values
        refused = (lo >= 0) & ((hi <= 1) | (hi > _STANDARD_MAX + 1e-3))
        assert not refused.any(), refused.nonzero().flatten()[:10]


# ---- exercise checks never trust the answer's own comparison ------------------------------------

class Liar:
    """An answer that says it equals anything: `==` True, `!=` False, every order False, and any
    arithmetic on it gives itself. It is never right."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __ne__
    __hash__ = object.__hash__

    def _self(self, *args):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _self
    __rtruediv__ = __abs__ = __neg__ = __getitem__ = __call__ = _self

    def __iter__(self):
        return iter((Liar(), Liar()))

    def __len__(self):
        return 2

    def __contains__(self, item):
        return True


def test_no_exercise_check_passes_an_answer_that_only_claims_to_be_equal():
    from poorvit.course.exercises import ExerciseError, check, load_checks
    from poorvit.study import Row

    liar = Liar()
    answers = [lambda *a, **k: liar, lambda *a, **k: (liar, liar), lambda *a, **k: [liar] * 2,
               Row("low-rank v", model=Liar())]
    passed = []
    for name in sorted(load_checks()):
        for i, answer in enumerate(answers):
            try:
                check(name, answer)
                passed.append((name, i))
            except ExerciseError:
                pass
    assert not passed, f"checks fooled by an answer whose == always says yes: {passed}"


def test_whole_numbers_are_checked_as_whole_numbers():
    from poorvit.course.exercises import ExerciseError, as_int
    assert as_int(np.int64(7), "x") == 7 and as_int(torch.tensor(7), "x") == 7
    assert as_int(7.0, "x") == 7
    for bad in (7.4, "7", None, True, Liar(), torch.ones(2)):
        with pytest.raises(ExerciseError, match="x: expected a whole number"):
            as_int(bad, "x")


# ---- positions follow the image size -----------------------------------------------------------

@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_positions_follow_another_image_size(pos_embed):
    from poorvit.cost import flops_per_image
    torch.manual_seed(0)
    model = ViT(get_config("micro", pos_embed=pos_embed, n_cls=2)).eval()
    at_32, at_64 = flops_per_image(model)["total"], flops_per_image(model, image_size=64)["total"]
    assert at_64 > 4 * at_32                       # 4x the patch tokens, and attention grows faster
    tokens = model.tokens
    pos = tokens.positions(8, 8)                   # the micro grid is 4 x 4
    assert pos.shape == (1, 2 + 64, 32)
    torch.testing.assert_close(pos[:, :2], tokens.pos_embed[:, :2])   # class-token positions kept
    assert tokens.positions(4, 4) is tokens.pos_embed                 # the config's size: as stored
    assert model(torch.randn(2, 3, 64, 48)).shape == (2, 10)           # any grid, even not square
    if pos_embed == "learned":                     # bicubic keeps a constant grid constant
        with torch.no_grad():
            tokens.pos_embed[:, 2:] = 0.5
        torch.testing.assert_close(tokens.positions(8, 8)[:, 2:], torch.full((1, 64, 32), 0.5))


# ---- the book's page names its tests -----------------------------------------------------------

def test_the_reliability_page_names_tests_that_exist():
    page = (ROOT / "book" / "reliability.md").read_text()
    named = set(__import__("re").findall(r"`(test_\w+)`", page))
    defined = {line.split("(")[0][4:] for path in (ROOT / "tests").glob("test_*.py")
               for line in path.read_text().splitlines() if line.startswith("def test_")}
    assert len(named) >= 10 and named <= defined, sorted(named - defined)
    toc = (ROOT / "_toc.yml").read_text()
    assert "book/reliability" in toc and toc.index("book/setup") < toc.index("book/reliability")
