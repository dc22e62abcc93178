"""mlfn installed from its wheel works in any folder, away from its source checkout: `mlfn deploy ./my-model --local`,
`mlfn invoke` and `mlfn local stop` from a fresh virtual environment, and the runtime base's build context (Dockerfile,
pins, the mlfn wheel) comes from the installed package. Nothing is written into the installed package.

The fresh venv holds only the mlfn wheel; its third-party dependencies (the same pins) are reached through a .pth
line naming this venv's site-packages as a plain path, which loads no .pth of that folder (so not the editable
install's finder): every `mlfn` module comes from the wheel, which the test checks."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mlfn.cli.packaging.own_files import build_wheel

pytestmark = pytest.mark.slow  # builds and installs a wheel, synthesizes one stack
ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "functions" / "iris"
TIMEOUT_S = 240


def _harness() -> object:
    spec = importlib.util.spec_from_file_location("mlfn_wheel_harness", ROOT / "tests" / "deploy" / "harness.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the mlfn wheel installed (--no-deps) and this venv's dependencies on its path."""
    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(ROOT, root / "dist", lambda _: None)
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)], check=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def run(venv: Path, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLFN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(cwd / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(cwd / "no-aws-creds"))
    done = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}")
    return done


def package_files(venv: Path) -> dict[str, int]:
    (site,) = (venv / "lib").glob("python*/site-packages")
    return {str(p.relative_to(site)): p.stat().st_mtime_ns for p in (site / "mlfn").rglob("*")
            if "__pycache__" not in p.parts}


def test_every_mlfn_module_comes_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    code = ("import json, sys, mlfn, mlfn.cli.main, mlfn.runtime.spec, mlfn.infra.synth; "
            "print(json.dumps({'mlfn': list(mlfn.__path__), 'files': [mlfn.cli.main.__file__, "
            "mlfn.runtime.spec.__file__, mlfn.infra.synth.__file__], 'path': sys.path}))")
    seen = json.loads(run(venv, tmp_path, "python", "-c", code).stdout)
    assert all(str(venv) in f for f in [*seen["mlfn"], *seen["files"]]), seen
    sources = [str(ROOT), *(str(ROOT / folder) for folder in ("runtime_layer", "infra", "cli"))]
    assert not set(seen["path"]) & set(sources), seen["path"]  # the dependencies' path is ROOT/.venv's, no source


def test_deploy_invoke_and_stop_from_an_unrelated_folder(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "somewhere" / "else"
    (work / "my-model").mkdir(parents=True)
    for name in ("model.onnx", "example.json"):
        shutil.copy(IRIS / name, work / "my-model" / name)
    before = package_files(venv)
    try:
        deployed = run(venv, work, "mlfn", "deploy", "./my-model", "--local")
        assert "mlfn invoke my-model --local" in deployed.stderr
        answer = json.loads(run(venv, work, "mlfn", "invoke", "my-model", "--local", "--data",
                                "@my-model/example.json", "--json").stdout)
        assert answer["status"] == 200 and len(answer["body"]["predictions"]) == 3, answer
        assert (work / ".mlfn" / "local").is_dir()  # state under the folder's .mlfn, as documented
    finally:
        stopped = run(venv, work, "mlfn", "local", "stop", check=False)
        _harness().kill_leftovers(work / ".mlfn" / "local")  # type: ignore[attr-defined]
    assert stopped.returncode == 0, stopped.stderr
    assert package_files(venv) == before  # nothing written into the installed package


def test_runtime_build_needs_no_source_checkout(venv: Path, tmp_path: Path) -> None:
    from mlfn.cli.packaging.dockerfile_build import docker_available

    if docker_available():
        pytest.skip("a Docker engine answers here: `--builder docker` would build a real base")
    done = run(venv, tmp_path, "mlfn", "runtime", "build", "--flavour", "lambda", "--builder", "docker", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no Docker engine answers here" in done.stderr and "source checkout" not in done.stderr


def test_runtime_base_context_comes_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    code = ("import json, pathlib, sys; from mlfn.cli.packaging.dockerfile_build import build_context; "
            "from mlfn.cli.packaging.base import resolve_base; "
            "ctx = build_context(sys.argv[1], pathlib.Path(sys.argv[2]), print); "
            "print(json.dumps({'files': sorted(str(p.relative_to(ctx)) for p in ctx.rglob('*')), "
            "'base': resolve_base(sys.argv[1]).kind}))")
    (tmp_path / "ctx").mkdir()
    done = run(venv, tmp_path, "python", "-c", code, "lambda", str(tmp_path / "ctx"))
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["base"] == "none"
    (wheel,) = (tmp_path / "ctx" / "wheels").glob("mlfn-*.whl")
    assert seen["files"] == ["Dockerfile", "awslambdaric.txt", "requirements.txt", "wheels", f"wheels/{wheel.name}"]
    shipped = (ROOT / "runtime_layer" / "images" / "Dockerfile.lambda").read_text()
    assert (tmp_path / "ctx" / "Dockerfile").read_text() == shipped
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, timeout=120)
    for name in ("runtime/lambda_handler.py", "runtime/requirements.txt", "runtime/images/Dockerfile.gpu",
                 "cli/main.py", "infra/cdk_flags.json"):
        assert (target / "mlfn" / name).is_file(), name
