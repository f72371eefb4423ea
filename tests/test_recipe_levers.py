"""The CPU recipe's levers in the training loop: Muon beside AdamW (`optim.MuonAdamW`), a moving
average of the weights (`TrainConfig.ema`), flip test-time augmentation (`tta_flip`) and every
token late in training (`patch_drop_until`). Each is checked against the library it rests on or
against the arithmetic done by hand, and each survives an interrupted run."""
import pytest
import torch
import torch.nn.functional as F

import poorvit.optim as O
import poorvit.train as T
from poorvit.config import get_config, get_train_config
from poorvit.data import DeviceLoader, load_cifar10
from poorvit.model import ViT


@pytest.fixture(scope="module")
def data():
    return load_cifar10()


def tiny(**kw):
    """A micro model and a plain recipe on 1,024 images: seconds on a CPU."""
    base = dict(epochs=2, batch_size=64, lr=2e-3, warmup_epochs=0.2, train_subset=1024,
                test_subset=500, label_smoothing=0.0)
    return get_config("micro"), get_train_config("smoke", **{**base, **kw})


def batches(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(n)]


def test_muon_takes_the_blocks_matrices_and_adamw_everything_else():
    model = ViT(get_config("micro"))
    opt = O.make_optimizer(model, get_train_config("smoke", optimizer="muon", muon_lr=0.03,
                                                   lr=1e-3, weight_decay=0.05,
                                                   muon_weight_decay=0.01))
    assert isinstance(opt, O.MuonAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = [names[id(p)] for p in opt.muon.param_groups[0]["params"]]
    rest = [names[id(p)] for g in opt.adamw.param_groups for p in g["params"]]
    assert muon == O.muon_matrices(model) and len(muon) == 4 * model.cfg.n_layer
    assert all(n.startswith("blocks.") and n.endswith("weight") for n in muon)
    assert {"head.weight", "tokens.patch.proj.weight", "tokens.pos_embed"} <= set(rest)
    assert sorted(muon + rest) == sorted(names.values())          # every parameter, once
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"]) == (0.03, 0.01)
    assert {gr["weight_decay"] for gr in opt.adamw.param_groups} == {0.05, 0.0}
    O.set_lr(opt, 5e-4)                                           # one schedule, two scales
    assert opt.param_groups[0]["lr"] == pytest.approx(0.015)
    assert {gr["lr"] for gr in opt.adamw.param_groups} == {5e-4}


def test_muon_adamw_steps_exactly_as_torch_muon_and_adamw_side_by_side():
    cfg = get_train_config("smoke", optimizer="muon", muon_lr=0.02, lr=1e-3)
    results = []
    for combined in (True, False):
        torch.manual_seed(0)
        model = ViT(get_config("micro"))
        if combined:
            opts = [O.make_optimizer(model, cfg)]
        else:
            mats = set(O.muon_matrices(model))
            ps = dict(model.named_parameters())
            groups = [{"params": [p for p in g["params"] if p not in
                                  {ps[n] for n in mats}], "weight_decay": g["weight_decay"]}
                      for g in O.param_groups(model, cfg.weight_decay)]
            opts = [torch.optim.Muon([ps[n] for n in O.muon_matrices(model)], lr=0.02,
                                     weight_decay=0.0, momentum=0.95, nesterov=True),
                    torch.optim.AdamW(groups, lr=1e-3, weight_decay=cfg.weight_decay)]
        for x, y in batches():
            F.cross_entropy(model(x), y).backward()
            for o in opts:
                o.step()
                o.zero_grad()
        results.append(list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_muon_on_an_old_torch_says_what_to_do(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(RuntimeError, match="PyTorch 2.9 or later.*optimizer='adamw'"):
        O.make_optimizer(ViT(get_config("micro")), get_train_config("smoke", optimizer="muon"))


@pytest.mark.parametrize("field, value", [("optimizer", "sgd"), ("muon_lr", 0.0),
                                          ("muon_momentum", 1.0), ("ema", 1.0), ("ema", -0.1),
                                          ("patch_drop_until", 1.5)])
def test_bad_lever_values_are_refused_in_one_line(field, value):
    with pytest.raises(ValueError, match=f"{field}=") as err:
        get_train_config("smoke", **{field: value})
    assert "\n" not in str(err.value)


def test_the_weights_moving_average_follows_torchs_ema_rule():
    torch.manual_seed(0)
    model = ViT(get_config("micro"))
    step = T.TrainStep(model, get_train_config("smoke", ema=0.9, label_smoothing=0.0), "cpu")
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    for x, y in batches():
        step(x, y)
        for n, p in model.named_parameters():                   # ema = 0.9 ema + 0.1 weights
            expected[n] = 0.9 * expected[n] + 0.1 * p.detach()
    ema = dict(step.eval_net.named_parameters())
    for n, v in expected.items():
        torch.testing.assert_close(ema[n], v, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ema["head.weight"], model.head.weight)
    assert "ema" in step.state_dict()


def test_flip_tta_is_the_mean_of_the_logits_of_an_image_and_its_mirror(data):
    torch.manual_seed(0)
    model = ViT(get_config("micro")).eval()
    loader = DeviceLoader(data.test_x[:200], data.test_y[:200], 100, False, "cpu")
    loss, right, n = T.evaluate(model, loader, flip=True)
    want_loss, want_right = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = (model(x) + model(x.flip(-1))) / 2
            want_loss += F.cross_entropy(logits, y, reduction="sum").item()
            want_right += (logits.argmax(-1) == y).sum().item()
    assert n == 200 and right == want_right and loss == pytest.approx(want_loss, rel=1e-5)
    assert T.evaluate(model, loader)[0] != pytest.approx(loss)   # not the plain evaluation


def test_every_token_is_seen_after_patch_drop_until(data, tmp_path):
    model_cfg = get_config("micro", patch_drop=0.5)      # a class token + 16 patches: 8 kept
    seen = []
    real = T.TrainStep.__call__

    def spy(self, x, y):
        hook = self.model.blocks[0].register_forward_pre_hook(
            lambda m, args: seen.append(args[0].shape[1]))
        try:
            return real(self, x, y)
        finally:
            hook.remove()

    import unittest.mock as mock
    with mock.patch.object(T.TrainStep, "__call__", spy):
        T.train(model_cfg, tiny(epochs=2, patch_drop_until=0.5)[1], data, out=tmp_path / "r",
                progress=None)
    steps = 2 * (1024 // 64)
    assert len(seen) == steps
    assert seen[: steps // 2] == [9] * (steps // 2) and seen[steps // 2:] == [17] * (steps // 2)


@pytest.mark.parametrize("levers", [dict(optimizer="muon"), dict(ema=0.99, tta_flip=True)])
def test_an_interrupted_run_with_a_lever_resumes_to_identical_weights(levers, data, tmp_path):
    model_cfg, train_cfg = tiny(epochs=3, **levers)
    straight = T.train(model_cfg, train_cfg, data, out=tmp_path / "a", progress=None)

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.train(model_cfg, train_cfg, data, [stop_after_first_epoch], out=tmp_path / "b",
                progress=None)
    resumed = T.train(model_cfg, train_cfg, data, out=tmp_path / "b", progress=None)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.final_acc == straight.final_acc
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_the_conv_stem_makes_one_token_per_patch_and_counts_its_parameters():
    from poorvit.cost import count_params
    from poorvit.tokens import ConvStem
    for preset in ("micro", "cpu"):
        cfg = get_config(preset, stem="conv")
        model = ViT(cfg)
        assert isinstance(model.tokens.patch, ConvStem)
        assert sum(p.numel() for p in model.parameters()) == count_params(cfg)
        tokens = model.eval().forward_features(torch.randn(2, 3, 32, 32))
        assert tokens.shape == (2, cfg.n_tokens, cfg.n_embd)
    convs = [m for m in ViT(get_config("cpu", stem="conv")).modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [
        ((3, 3), (2, 2), 64), ((3, 3), (2, 2), 128), ((1, 1), (1, 1), 128)]


def test_the_conv_stem_refuses_what_it_cannot_do(data):
    with pytest.raises(ValueError, match="patch_size=6 is not valid.*power of 2"):
        get_config("cpu", patch_size=8, image_size=48, stem="conv", patch_kernel=0) and \
            get_config("cpu", patch_size=6, image_size=48, stem="conv")
    with pytest.raises(ValueError, match="stem='conv': set whiten='off'"):
        T.build_model(get_config("micro", stem="conv"),
                      get_train_config("smoke", whiten="trainable"), data)


def test_the_throughput_bench_times_each_lever_and_saves_its_table(tmp_path, monkeypatch):
    """`bench cpu-throughput` on two of its levers, one short pass each: a row per lever with
    its images/s, the recipe's row as the reference, the table saved with its machine."""
    import json

    from poorvit.cli import build_parser
    from poorvit.cli import cpu_recipe
    monkeypatch.setattr(cpu_recipe, "CPU_THROUGHPUT", [cpu_recipe.CPU_THROUGHPUT[0],
                                                       ("one thread", {}, {}, 1)])
    args = build_parser().parse_args(["bench", "cpu-throughput", "--repeats", "1", "--save",
                                      str(tmp_path / "t.json")])
    out = cpu_recipe.cpu_throughput_bench(args)
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["lever"] for r in rows] == [r["lever"] for r in out["rows"]] and len(rows) == 2
    assert rows[0]["vs the recipe"] == 1.0 and all(r["images/s"] > 0 for r in rows)
    assert all(r["min"] <= r["images/s"] <= r["max"] for r in rows)
