"""The command line (`poorvit.cli`): every command's parser, its help, its defaults, the one-line
error and exit status 2 on a bad option, and the rule that the CLI is the only place with argparse
and stays out of `import poorvit`."""
import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poorvit.cli import COMMANDS, build_parser, main
from poorvit.cli.train import configs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "poorvit"


def _python(code_or_args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh interpreter at the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_parser():
    assert set(_subcommands(build_parser())) == set(COMMANDS) == {
        "train", "bench", "sweep", "report", "chapters", "student", "grade"}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_of_each_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m poorvit {command}")
    assert "--help" in out


def test_help_in_a_fresh_interpreter():
    """`python -m poorvit --help` lists the commands; `python -m poorvit train --help` shows the
    command's description and options, as the README tells a reader to run them."""
    top = _python(["-m", "poorvit", "--help"])
    assert top.returncode == 0, top.stderr
    assert all(name in top.stdout for name in COMMANDS)
    train = _python(["-m", "poorvit", "train", "--help"])
    assert train.returncode == 0, train.stderr
    assert "--preset" in train.stdout and "--set FIELD=VALUE" in train.stdout
    assert "`python -m poorvit train`" in train.stdout          # the module's doc as description


@pytest.mark.parametrize("argv, expected", [
    (["train"], dict(preset="paper", scale=None, overrides=[], minutes=None, seed=None, out=None,
                     data=None, device=None, resume=False, fresh=False, bar=False)),
    (["bench", "loader"], dict(scale=None, device=None, images=10240, workers=None, repeats=3,
                               threads=None, batch=256, steps=3, minutes=None, save=None,
                               levers=None, seeds="0")),
    (["sweep"], dict(name="study", rows=None, scale=None, seeds=1, out="runs", preset=None,
                     overrides=[], data=None, device=None, list=False, no_torchrun=False)),
    (["report"], dict(folder="runs", out=None, records=False, page=None, save_records=None)),
    (["student", "handout"], dict(out="handout", notebooks=[])),
    (["grade", "a.ipynb"], dict(submitted=[Path("a.ipynb")], scale="smoke", timeout=600,
                                json=None)),
])
def test_defaults_of_each_command(argv, expected):
    args = vars(build_parser().parse_args(argv))
    assert {k: args[k] for k in expected} == expected
    assert callable(args["func"])


def test_bench_lists_every_benchmark():
    choices = ("loader", "step", "matmul", "compile", "cpu-recipe", "cpu-levers", "cpu-throughput",
               "all")
    for what in choices:
        args = build_parser().parse_args(["bench", what, "--batch", "16"])
        assert args.what == what and args.batch == 16
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "nothing"])


def test_train_options_reach_the_configs():
    args = build_parser().parse_args(["train", "--preset", "paper", "--scale", "smoke", "--set",
                                      "n_kv_head=4", "--set", "lr=5e-4", "--seed", "3",
                                      "--minutes", "2"])
    model_cfg, train_cfg = configs(args)
    assert model_cfg.n_kv_head == 4 and train_cfg.lr == 5e-4
    assert train_cfg.seed == 3 and train_cfg.minutes == 2 and train_cfg.scale == "smoke"


@pytest.mark.parametrize("argv", [
    ["train", "--scale", "smoke", "--set", "no_such_field=1"],
    ["sweep", "--scale", "smoke", "--list", "--set", "no_such_field=1"],
])
def test_an_unknown_field_is_one_line_and_status_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set no_such_field: no such field")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_inputs_are_one_line_and_status_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent'}: no such folder\n"
    assert main(["grade", str(tmp_path / "absent.ipynb")]) == 2
    assert capsys.readouterr().err.startswith("error: no such notebook:")


def test_status_2_from_the_process():
    done = _python(["-m", "poorvit", "train", "--scale", "smoke", "--set", "no_such_field=1"])
    assert done.returncode == 2
    assert done.stderr.startswith("error: --set no_such_field") and done.stderr.count("\n") == 1


def _imports_argparse(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "argparse"
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "argparse":
            return True
    return False


def test_the_cli_is_the_only_place_with_argparse():
    library = sorted(PACKAGE.glob("*.py")) + sorted((PACKAGE / "course").glob("*.py"))
    assert len(library) > 10
    assert [p.relative_to(ROOT).as_posix() for p in library if _imports_argparse(p)] == []
    assert _imports_argparse(PACKAGE / "cli" / "__init__.py")


def test_import_poorvit_loads_neither_the_course_nor_the_cli():
    code = ("import sys, poorvit; print(sorted(m for m in sys.modules "
            "if m.startswith(('poorvit.cli', 'poorvit.course'))))")
    done = _python(["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_poorvit_cli_loads_no_command():
    """Importing the CLI loads no command module; building the parser loads the commands but not
    what they run (the timing library, timm, the course's chapters)."""
    code = ("import sys, poorvit.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('poorvit.cli.'))); "
            "poorvit.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m in ('poorvit.timing', 'timm') "
            "or m.startswith('poorvit.course.ch')))")
    done = _python(["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]
