"""`mlfn validate` and `mlfn build` run as a user runs them (a subprocess) on model folders that cannot work: hooks
that cannot load (a syntax error, a missing import, an exit or a hang at import), a symlink loop, and something
other than a file named model.onnx. Each is one line on stderr, exit 2, no traceback, and no image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
COMMANDS = (["validate", "--quick"], ["build"])
HANG_LIMIT_S = 3

BAD_HOOKS = {
    "syntax error": ("def preprocess(body, content_type)\n    return None\n", "SyntaxError"),
    "missing import": ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
    "os._exit(0) at import": ("import os\nos._exit(0)\n", "ended the process (exit status 0"),
    "sys.exit(3) at import": ("import sys\nsys.exit(3)\n", "ended the process (exit status 3"),
    "hang at import": ("import time\ntime.sleep(600)\n", f"imports within {HANG_LIMIT_S}s"),
    "no hook defined": ("X = 1\n", "a function named preprocess or postprocess"),
}


def mlfn(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFN_HOME": str(home), "MLFN_HOOKS_TIMEOUT_S": str(HANG_LIMIT_S)}
    return subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)


def iris(tmp_path: Path, hooks: str | None = None) -> Path:
    directory = tmp_path / "iris"
    directory.mkdir()
    shutil.copy(FUNCTIONS / "iris" / "model.onnx", directory / "model.onnx")
    if hooks is not None:
        (directory / "mlfn.toml").write_text('name = "iris"\nhooks = "hooks.py"\n')
        (directory / "hooks.py").write_text(hooks)
    return directory


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], command: str, *wanted: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"mlfn {command}: error: ") and "Traceback" not in done.stderr
    for text in wanted:
        assert text in lines[0]
    assert "sha256:" not in done.stdout  # no image digest printed


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("case", BAD_HOOKS, ids=lambda c: c.replace(" ", "-"))
def test_hooks_that_cannot_load_are_refused(case: str, command: list[str], tmp_path: Path) -> None:
    text, reason = BAD_HOOKS[case]
    directory = iris(tmp_path, text)
    started = time.monotonic()
    done = mlfn(command[0], str(directory), *command[1:], home=tmp_path / "home")
    assert time.monotonic() - started < HANG_LIMIT_S + 30
    assert_one_line_refusal(done, command[0], "hooks.py: expected ", reason)
    assert not (tmp_path / "home" / "images" / "iris").exists()


def test_hooks_that_load_still_build(tmp_path: Path) -> None:
    directory = iris(tmp_path, "def postprocess(outputs):\n    return outputs\n")
    done = mlfn("build", str(directory), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("sha256:")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_symlink_loop_is_one_line(command: list[str], tmp_path: Path) -> None:
    directory = iris(tmp_path)
    (directory / "a").symlink_to("b")
    (directory / "b").symlink_to("a")
    done = mlfn(command[0], str(directory), *command[1:], home=tmp_path / "home")
    assert_one_line_refusal(done, command[0], "a: expected a file inside the model directory, got a symlink loop")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", ["a FIFO (named pipe)", "a directory"])
def test_model_that_is_not_a_file_says_what_it_is(kind: str, command: list[str], tmp_path: Path) -> None:
    directory = iris(tmp_path)
    (directory / "model.onnx").unlink()
    if kind == "a directory":
        (directory / "model.onnx").mkdir()
    else:
        os.mkfifo(directory / "model.onnx")
    done = mlfn(command[0], str(directory), *command[1:], home=tmp_path / "home")
    assert_one_line_refusal(done, command[0], f"model.onnx: expected an ONNX model file, got {kind}")


def test_deploy_health_probe_refuses_hooks_that_exit_at_import(tmp_path: Path) -> None:
    """The deploy flow loads hooks in its health probe's process (bounded by its own timeout): an `os._exit(0)` at
    import must not pass for healthy."""
    from mlfn.cli.health_probe import HealthError, probe

    directory = iris(tmp_path, BAD_HOOKS["os._exit(0) at import"][0])
    with pytest.raises(HealthError, match="ended \\(exit status 0\\) before answering /ping"):
        probe(directory, "lambda", timeout_s=60)
    (directory / "hooks.py").write_text("def postprocess(outputs):\n    return outputs\n")
    assert probe(directory, "lambda", timeout_s=60) > 0
