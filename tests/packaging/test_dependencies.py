"""A model folder's requirements.txt: its own layer (wheels for the image's platform), imported by the hooks in the
image, in `mlfn serve` and in the emulator's sandboxes; conflicts and packages without wheels refused.

These tests resolve with pip against the package index (small wheels: `roman`, 8 KB, pure Python); the runtime's
own resolution and the layer are cached under one MLFN_HOME for the module, as a developer's machine would.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import onnx
import pytest

from mlfn.cli.local.processes import stop
from mlfn.cli.main import main
from mlfn.cli.packaging.oci import Layout

from .conftest import _free_port
from .helpers import layer_members, mlfn_json, run

HOOKS = '''
import roman


def postprocess(outputs):
    return {"numerals": [roman.toRoman(int(label) + 1) for label in outputs["label"]]}
'''
ROMAN = "roman==5.2\n"
IRIS_ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}  # setosa (0 -> I), virginica (2 -> III)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deps-home")


@pytest.fixture
def home(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFN_HOME", str(shared_home))
    return shared_home


@pytest.fixture
def roman_dir(iris_dir: Path) -> Path:
    """The iris folder with hooks that need `roman`, which only its requirements.txt brings."""
    (iris_dir / "hooks.py").write_text(HOOKS)
    (iris_dir / "mlfn.toml").write_text('hooks = "hooks.py"\n')
    (iris_dir / "requirements.txt").write_text("# the hooks' own packages\n" + ROMAN)
    return iris_dir


def _build_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    return capsys.readouterr().err


def test_roman_is_not_on_this_machine() -> None:
    """The tests below prove the layer brings it: the test environment itself must not have it."""
    with pytest.raises(ModuleNotFoundError):
        __import__("roman")


def test_image_holds_the_dependency_layer_and_its_hooks_import_it(
        roman_dir: Path, home: Path, registry: str, skopeo: str, umoci: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    built = mlfn_json(capsys, "build", str(roman_dir))
    deps = built["dependencies"]
    assert [(p["name"], p["version"]) for p in deps["packages"]] == [("roman", "5.2")]
    assert deps["target"] == "cp311-manylinux-x86_64"
    names = {m.name for m in layer_members(Layout(Path(built["layout"])).blob_path(deps["digest"]))}
    assert "opt/mlfn/deps/roman/__init__.py" in names and not any("numpy" in n or n.endswith(".pyc") for n in names)
    pushed = mlfn_json(capsys, "push", str(roman_dir), "--to", f"{registry}/models/roman:v1")
    assert pushed["digest"] == built["digest"]

    inspect = json.loads(run(skopeo, "inspect", "--tls-verify=false", f"docker://{registry}/models/roman:v1"))
    assert inspect["Layers"] == [deps["digest"], *(la["digest"] for la in built["layers"])]  # between base and model
    pulled, bundle = tmp_path / "pulled", tmp_path / "bundle"
    run(skopeo, "copy", "--src-tls-verify=false", f"docker://{registry}/models/roman:v1", f"oci:{pulled}:roman")
    run(umoci, "unpack", "--image", f"{pulled}:roman", str(bundle))
    env = json.loads((bundle / "config.json").read_text())["process"]["env"]
    assert "MLFN_DEPS_DIR=/opt/mlfn/deps" in env
    rootfs = bundle / "rootfs"
    # The runtime as the image starts it, with the image's own folders (roman is pure Python, so this machine's
    # interpreter can stand in for the image's).
    script = ("import json, sys; from mlfn.runtime.service import InferenceService; "
              "svc = InferenceService.from_dir(sys.argv[1]); "
              f"reply = svc.invocations(json.dumps({IRIS_ROWS!r}).encode(), {{'content-type': 'application/json'}}); "
              "print(reply.status, reply.body.decode())")
    done = subprocess.run([sys.executable, "-c", script, str(rootfs / "opt/mlfn/model")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MLFN_DEPS_DIR": str(rootfs / "opt/mlfn/deps")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1) == ["200", '{"numerals":["I","III"]}\n'], done.stdout


def test_mlfn_serve_imports_the_dependency(roman_dir: Path, home: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlfn.cli.main", "serve", str(roman_dir), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlfn serve did not answer /ping"
            time.sleep(0.2)
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", json=IRIS_ROWS, timeout=30)
    finally:
        stop(proc, timeout_s=30)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"numerals": ["I", "III"]}


def test_the_emulator_sandbox_imports_the_dependency(roman_dir: Path, home: Path) -> None:
    from mlfn.cli.local.data_plane import DataPlane

    plane = DataPlane(home / "plane", persist=False)
    plane.start()
    try:
        endpoint = plane.register_model(roman_dir, auth_type="NONE")
        tls = ssl.create_default_context(cafile=str(plane.ca_path))
        reply = httpx.post(endpoint.url + "invocations", json=IRIS_ROWS, verify=tls, timeout=120)
    finally:
        plane.stop()
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"numerals": ["I", "III"]}


def test_validate_lists_the_dependencies(roman_dir: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = mlfn_json(capsys, "validate", str(roman_dir), "--quick")
    assert [p["name"] for p in report["dependencies"]["packages"]] == ["roman"]
    capsys.readouterr()
    assert main(["validate", str(roman_dir), "--quick"]) == 0
    assert "dependencies (requirements.txt): 1 package(s) for cp311-manylinux-x86_64: roman 5.2" in \
        capsys.readouterr().out


def test_a_conflict_with_the_runtime_pins_is_refused_naming_both(iris_dir: Path, home: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "requirements.txt").write_text("numpy==1.26.4\n")
    err = _build_error(capsys, "build", str(iris_dir))
    assert "numpy==1.26.4 conflicts with the runtime's pin numpy==2.4.6" in err and "Traceback" not in err


@pytest.mark.parametrize(("line", "named"), [
    ("httpcore==0.16.3", "h11<0.15"),  # a conflict through another package: the image has h11 0.16 (uvicorn's)
    ("h11<0.15", "h11"),  # not pinned by the runtime, but uvicorn brings it
])
def test_a_conflict_with_what_the_runtime_brings_is_refused(iris_dir: Path, home: Path, line: str, named: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "requirements.txt").write_text(line + "\n")
    err = _build_error(capsys, "build", str(iris_dir))
    assert "conflicts with the runtime's packages" in err and named in err, err


def test_a_package_without_a_wheel_for_the_platform_is_refused(iris_dir: Path, home: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "requirements.txt").write_text("docopt==0.6.2\n")  # a source distribution only
    (iris_dir / "hooks.py").write_text(HOOKS)  # the hooks check installs for this machine after the image's check
    (iris_dir / "mlfn.toml").write_text('hooks = "hooks.py"\n')
    err = _build_error(capsys, "build", str(iris_dir))
    assert "no wheel of docopt" in err and "cp311-manylinux-x86_64" in err and "compiles nothing" in err


def test_pip_options_are_refused(iris_dir: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "requirements.txt").write_text("--index-url http://example.invalid/simple\nroman\n")
    err = _build_error(capsys, "build", str(iris_dir))
    assert "requirements.txt line 1" in err and "pip options are not supported" in err


def test_layer_is_reproducible_and_kept_when_only_the_model_changes(
        roman_dir: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlfn.cli.packaging.dependencies import image_dependencies

    first = mlfn_json(capsys, "build", str(roman_dir))
    # From nothing (no cache, another layout): the same wheels give the same layer.
    fresh = image_dependencies(roman_dir, "lambda", "x86_64", Layout(tmp_path / "other").init(),
                               cache=tmp_path / "fresh-cache")
    assert fresh is not None and fresh.layer is not None and fresh.layer.digest == first["dependencies"]["digest"]

    model = onnx.load(roman_dir / "model.onnx")
    model.doc_string = "retrained"
    onnx.save(model, roman_dir / "model.onnx")
    second = mlfn_json(capsys, "build", str(roman_dir))
    assert second["dependencies"]["digest"] == first["dependencies"]["digest"]
    assert second["digest"] != first["digest"]
    before, after = ([la["digest"] for la in b["layers"]] for b in (first, second))
    assert before[0] != after[0] and before[1] == after[1]  # only the model file's layer differs

    (roman_dir / "requirements.txt").write_text("roman==5.1\n")
    third = mlfn_json(capsys, "build", str(roman_dir))
    assert third["dependencies"]["digest"] != first["dependencies"]["digest"]
    assert third["layers"][0]["digest"] == after[0]


def test_arm64_functions_get_aarch64_wheels(roman_dir: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (roman_dir / "mlfn.toml").write_text('hooks = "hooks.py"\n[lambda]\narchitecture = "arm64"\n')
    built = mlfn_json(capsys, "build", str(roman_dir), "--base", "none")
    assert built["dependencies"]["target"] == "cp311-manylinux-aarch64"
    config = json.loads(Layout(Path(built["layout"])).resolve()[0].config_bytes)
    assert config["architecture"] == "arm64"
