"""Sandboxes run the pushed image: its root filesystem as unpacked from the emulator's ECR, its entrypoint and its
environment, in a chroot of their own mount namespace; where that cannot be, the host runtime, and they say why.

The slow test builds the real Lambda runtime base (debootstrap; MLFN_SMOKE_HOME keeps it between runs, as for
tests/packaging/test_image_runs.py) and adds a layer and a variable that only the image has.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlfn.cli.image_contents import unpack_model
from mlfn.cli.local import image_rootfs
from mlfn.cli.local.control_plane import ControlPlane
from mlfn.cli.local.data_plane import DataPlane
from mlfn.cli.packaging.base import Base, from_layout, resolve_base
from mlfn.cli.packaging.model_image import build_model_image
from mlfn.cli.packaging.oci import Layout
from mlfn.runtime.spec import load_spec

from .image_helpers import derived_base, push_built, with_config

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
EXAMPLE = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
MARKER = "/etc/mlfn-image-marker.txt"
HOOKS = f'''import os
from pathlib import Path

MARK = Path("{MARKER}")


def _writes(path):
    if not os.environ.get("MLFN_IMAGE_MARK"):  # not inside the image (the host runtime): never write on the host
        return None
    try:
        Path(path).write_text("written by the handler")
        return True
    except OSError:
        return False


def postprocess(outputs):
    return {{"marker": MARK.read_text() if MARK.exists() else None, "env": os.environ.get("MLFN_IMAGE_MARK"),
            "root_writable": _writes("/etc/written-by-the-handler"), "tmp_writable": _writes("/tmp/written")}}
'''


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[ControlPlane, DataPlane]]:
    """A control plane and a data plane sharing one state directory, as `mlfn local start` runs them."""
    state = tmp_path / "state"
    with ControlPlane(state_dir=state) as cp:
        dp = DataPlane(state, persist=False)
        dp.start()
        try:
            yield cp, dp
        finally:
            dp.stop()


def _model(tmp_path: Path, hooks: bool = False) -> Path:
    d = tmp_path / "iris"
    shutil.copytree(FUNCTIONS / "iris", d)
    if hooks:  # a top-level key: before the first [table]
        (d / "hooks.py").write_text(HOOKS)
        (d / "mlfn.toml").write_text('hooks = "hooks.py"\n' + (d / "mlfn.toml").read_text())
    return d


def _invoke(dp: DataPlane, url: str) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(dp.ca_path)), timeout=120) as client:
        return client.post(f"{url}v1/models/iris:predict", json=EXAMPLE)


def _deploy(cp: ControlPlane, dp: DataPlane, tmp_path: Path, base: Base, name: str,
            hooks: bool = False) -> tuple[str, Path, str]:
    """Build the model on `base`, push it to the emulator's ECR and serve it: (ImageUri, model folder, URL)."""
    spec = load_spec(_model(tmp_path / name, hooks))
    built = build_model_image(spec, base, tmp_path / "images" / name)
    uri = push_built(built, cp.url, f"mlfn-{name}")
    contents = unpack_model(built, tmp_path / "models")
    ep = dp.register_lambda(name, contents, image=uri, auth_type="NONE", memory_mb=1024, timeout_s=30)
    return uri, contents, ep.url


# ---------------------------------------------------------------------------------------------- fast tier


def test_pushed_layers_and_manifests_are_kept_by_digest_and_tag(cloud: tuple[ControlPlane, DataPlane],
                                                                tmp_path: Path) -> None:
    cp, dp = cloud
    spec = load_spec(_model(tmp_path))
    built = build_model_image(spec, resolve_base("lambda", "none"), tmp_path / "images" / "iris")
    uri = push_built(built, cp.url, "mlfn-iris")
    image = image_rootfs.resolve(dp.state_dir, uri)
    assert image.digest == built.digest and uri.endswith("@" + built.digest)
    by_tag = image_rootfs.resolve(dp.state_dir, uri.split("@")[0] + ":latest")
    assert by_tag.digest == built.digest
    for layer in built.layers:
        assert (dp.state_dir / "ecr" / "blobs" / "sha256" / layer.digest.split(":")[1]).read_bytes() == \
            layer.path.read_bytes()


def test_a_model_only_image_runs_on_the_host_runtime_and_says_why(cloud: tuple[ControlPlane, DataPlane],
                                                                  tmp_path: Path) -> None:
    cp, dp = cloud
    _uri, _contents, url = _deploy(cp, dp, tmp_path, resolve_base("lambda", "none"), "plain")
    [target] = dp.status()["targets"]
    assert target["isolation"].startswith("host runtime")
    assert "the image has no runtime base" in target["isolation"], target["isolation"]
    assert _invoke(dp, url).status_code == 200


def test_an_image_missing_from_the_registry_is_named() -> None:
    run = image_rootfs.prepare("/nonexistent-state", "123456789012.dkr.ecr.us-east-1.amazonaws.com/x@sha256:"
                               + "0" * 64)
    assert not run.isolated
    assert "is not in the emulator's registry" in run.reason and "mlfn push" in run.reason


@pytest.fixture
def nobodys_image(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A state directory owned by nobody holding a pushed image on the placeholder base: (state, ImageUri)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to start a process as another user (setpriv)")
    state = Path(tempfile.mkdtemp(prefix="mlfn-nobody-"))  # outside pytest's root-only folders
    try:
        with ControlPlane(state_dir=state) as cp:
            spec = load_spec(_model(tmp_path))
            built = build_model_image(spec, from_layout(_placeholder_base(tmp_path / "base"), "lambda"),
                                      tmp_path / "images" / "iris")
            uri = push_built(built, cp.url, "mlfn-nobody")
        subprocess.run(["chown", "-R", "65534:65534", str(state)], check=True)
        yield state, uri
    finally:
        shutil.rmtree(state, ignore_errors=True)


PREPARE = ("import json, sys; from mlfn.cli.local.image_rootfs import prepare; "
           "run = prepare(sys.argv[1], sys.argv[2]); "
           "print(json.dumps({'isolated': run.isolated, 'mode': run.mode, 'rootfs': run.rootfs}))")


def test_without_root_the_image_runs_in_a_user_namespace(nobodys_image: tuple[Path, str]) -> None:
    state, uri = nobodys_image
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", PREPARE,
                          str(state), uri], capture_output=True, text=True, check=True, timeout=120).stdout
    run = json.loads(out)
    assert run["isolated"] and "user namespace (rootless)" in run["mode"], run
    assert (Path(run["rootfs"]) / "etc" / "from-the-base").stat().st_uid == 65534  # umoci --rootless


def test_without_root_or_user_namespaces_the_host_runtime_is_chosen_and_the_reason_given(
        nobodys_image: tuple[Path, str]) -> None:
    state, uri = nobodys_image
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("no_userns.py")), sys.executable, "-c",
                          PREPARE, str(state), uri], capture_output=True, text=True, check=True, timeout=120).stdout
    run = json.loads(out)
    assert not run["isolated"] and run["mode"].startswith("host runtime"), run
    assert "not root, and a user namespace of its own was refused" in run["mode"], run


def test_the_image_is_unpacked_once_with_its_config(cloud: tuple[ControlPlane, DataPlane], tmp_path: Path) -> None:
    """A stand-in base (a placeholder interpreter, the usual empty mount points): the rootfs holds base and model
    files, the run takes the image's entrypoint, command and environment; a second prepare reuses the unpack."""
    if os.geteuid() != 0:
        pytest.skip("unpacking for a chroot needs root")
    cp, dp = cloud
    base_dir = _placeholder_base(tmp_path / "base")
    spec = load_spec(_model(tmp_path))
    built = build_model_image(spec, from_layout(base_dir, "lambda"), tmp_path / "images" / "iris")
    uri = push_built(built, cp.url, "mlfn-iris")
    run = image_rootfs.prepare(dp.state_dir, uri)
    assert run.isolated, run.reason
    rootfs = Path(run.rootfs)
    assert (rootfs / "etc" / "from-the-base").read_text() == "base\n"
    model = (FUNCTIONS / "iris" / "model.onnx").read_bytes()
    assert (rootfs / "opt" / "mlfn" / "model" / "model.onnx").read_bytes() == model
    assert run.entrypoint == ("/usr/bin/python3", "-m", "awslambdaric")
    assert run.cmd == ("mlfn.runtime.lambda_handler.handler",)
    assert run.env["BASE_VAR"] == "1" and run.env["MLFN_MODEL_DIR"] == "/opt/mlfn/model"
    argv = run.argv()
    assert argv[argv.index("--") + 1:] == ["/usr/bin/python3", "-m", "awslambdaric",
                                           "mlfn.runtime.lambda_handler.handler"]
    stamp = (rootfs.parent / ".complete").stat().st_mtime_ns
    assert image_rootfs.prepare(dp.state_dir, uri).rootfs == run.rootfs
    assert (rootfs.parent / ".complete").stat().st_mtime_ns == stamp


def _placeholder_base(path: Path) -> Path:
    from mlfn.cli.packaging.layer import rootfs_entries, write_layer
    from mlfn.cli.packaging.oci import LAYER_GZIP, MANIFEST, Descriptor, Image, canonical_json, make_manifest

    root = path.parent / "rootfs-base"
    for sub in ("proc", "tmp", "dev", "etc", "usr/bin"):
        (root / sub).mkdir(parents=True)
    (root / "etc" / "from-the-base").write_text("base\n")
    (root / "usr" / "bin" / "python3").write_text("placeholder\n")
    layout = Layout(path).init()
    layer = write_layer(rootfs_entries(root), path / "layer.tmp")
    layout.put_file(layer.path, layer.digest, move=True)
    config = canonical_json({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin", "BASE_VAR=1"], "Entrypoint": ["/usr/bin/python3", "-m", "awslambdaric"],
                   "Cmd": ["x"], "Labels": {"dev.mlfn.base": "placeholder", "dev.mlfn.flavour": "lambda"}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "placeholder base"}],
    })
    layout.tag("placeholder", Image(make_manifest(config, [Descriptor(LAYER_GZIP, layer.digest, layer.size)],
                                                  MANIFEST), MANIFEST, config))
    return path


# ---------------------------------------------------------------------------------------------- slow tier


@pytest.fixture(scope="module")
def lambda_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Lambda runtime base `mlfn runtime build` makes (debootstrap; cached under MLFN_SMOKE_HOME)."""
    if os.geteuid() != 0:
        pytest.skip("building the runtime base and a chroot need root")
    for tool in ("debootstrap", "umoci"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: run .ci/setup-images.sh")
    home = Path(os.environ.get("MLFN_SMOKE_HOME") or tmp_path_factory.mktemp("smoke-home"))
    env = {**os.environ, "MLFN_HOME": str(home)}
    mlfn = str(Path(sys.executable).parent / "mlfn")
    proc = subprocess.run([mlfn, "runtime", "build", "--flavour", "lambda", "--json"], capture_output=True, text=True,
                          env=env, check=False, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(json.loads(proc.stdout)["layout"])


@pytest.mark.slow
def test_the_handler_sees_what_only_the_image_has(cloud: tuple[ControlPlane, DataPlane], tmp_path: Path,
                                                  lambda_base: Path) -> None:
    cp, dp = cloud
    marked = derived_base(lambda_base, tmp_path / "marked-base", {MARKER: "added by the base\n"},
                          {"MLFN_IMAGE_MARK": "from the image config"})
    uri, contents, url = _deploy(cp, dp, tmp_path, from_layout(marked, "lambda"), "marked", hooks=True)
    [target] = dp.status()["targets"]
    assert target["isolation"].startswith("image mlfn-marked@sha256:"), target["isolation"]
    answer = _invoke(dp, url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == {"marker": "added by the base\n", "env": "from the image config",
                                            "root_writable": False, "tmp_writable": True}
    logs = "\n".join(p.read_text() for p in (dp.state_dir / "logs").rglob("*.jsonl"))
    assert "INIT_START Runtime Version: image mlfn-marked@sha256:" in logs
    # the same image on the host runtime (what ran before): the base's file and variable are not there
    dp.unregister(target["key"])
    os.environ["MLFN_LOCAL_ISOLATION"] = "host"
    try:
        ep = dp.register_lambda("marked-host", contents, image=uri, auth_type="NONE", memory_mb=1024, timeout_s=30)
    finally:
        del os.environ["MLFN_LOCAL_ISOLATION"]
    assert ep.isolation.startswith("host runtime") and "MLFN_LOCAL_ISOLATION=host" in ep.isolation
    assert _invoke(dp, ep.url).json()["predictions"]["marker"] is None


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "cmd"), [("sagemaker", "not-serve"), ("ecs", "serve")])
def test_a_container_runs_its_image(cloud: tuple[ControlPlane, DataPlane], tmp_path: Path, lambda_base: Path,
                                    kind: str, cmd: str) -> None:
    """SageMaker runs `docker run IMAGE serve` (the image's ENTRYPOINT, `serve` replacing its CMD: a CMD that is
    not `serve` must not matter); ECS runs ENTRYPOINT + CMD. Both see what only the image has."""
    cp, dp = cloud
    labels = {**json.loads(Layout(lambda_base).resolve()[0].config_bytes)["config"]["Labels"],
              "dev.mlfn.flavour": "gpu", "dev.mlfn.accelerator": "cpu"}
    marked = derived_base(lambda_base, tmp_path / "marked-base", {MARKER: "added by the base\n"},
                          {"MLFN_IMAGE_MARK": "from the image config"}, Labels=labels,
                          Entrypoint=["/usr/bin/python3", "-m", "mlfn.runtime.server"])
    model = _model(tmp_path / kind, hooks=True)
    (model / "mlfn.toml").write_text((model / "mlfn.toml").read_text().replace('target = "lambda"',
                                                                               f'target = "{kind}"'))
    built = build_model_image(load_spec(model), from_layout(marked, "gpu"), tmp_path / "images" / kind)
    assert json.loads(built.image.config_bytes)["config"]["Cmd"] == ["serve"]  # mlfn's model images set serve
    uri = push_built(built, cp.url, f"mlfn-{kind}", with_config(built, f"{kind}-cmd", Cmd=[cmd]))
    ep = dp.register_container(kind, unpack_model(built, tmp_path / "models"), kind=kind, image=uri,
                               auth_type="NONE", memory_mb=1024)
    assert ep.isolation.startswith(f"image mlfn-{kind}@sha256:"), ep.isolation
    with httpx.Client(verify=ssl.create_default_context(cafile=str(dp.ca_path)), timeout=120) as client:
        answer = client.post(f"{ep.url}invocations", json=EXAMPLE)
    assert answer.status_code == 200, answer.text
    # a container's root is writable (an overlay: the unpacked image shared by other instances stays untouched)
    assert answer.json() == {"marker": "added by the base\n", "env": "from the image config",
                             "root_writable": True, "tmp_writable": True}
    assert not (dp.state_dir / "images" / uri.rsplit(":", 1)[1] / "rootfs" / "etc" / "written-by-the-handler").exists()


@pytest.mark.slow
def test_the_base_bytecode_stays_valid_without_mtimes(lambda_base: Path) -> None:
    """Layers set every mtime to 0, so timestamp-based .pyc files would be stale and every cold start recompile
    every module (measured: 2.5 s instead of 0.66 s for iris in the emulator; the same on Lambda, whose root is
    read-only): the base's .pyc files are hash-based and unchecked, in the OS layer and the packages layer."""
    import struct
    import tarfile

    image, _ = Layout(lambda_base).resolve()
    wanted = {"usr/lib/python3.11/__pycache__/os.cpython-311.pyc",
              "opt/mlfn/python/numpy/__pycache__/__init__.cpython-311.pyc"}
    flags: dict[str, int] = {}
    for layer in image.layers[:2]:
        with tarfile.open(Layout(lambda_base).blob_path(layer.digest), "r:gz") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if name in wanted:
                    data = tar.extractfile(member).read(8)  # type: ignore[union-attr]
                    flags[name] = struct.unpack("<I", data[4:8])[0]
    assert flags == dict.fromkeys(wanted, 1), flags  # bit 0: hash-based; bit 1 (check_source) clear: unchecked


# ---------------------------------------------------------------------------------------------- from the control plane


def _function_made_with_boto3(cp: ControlPlane, name: str, image: str) -> None:
    import boto3

    kwargs = dict(endpoint_url=cp.url, region_name="us-east-1", aws_access_key_id="mlfn-local",
                  aws_secret_access_key="mlfn-local-secret")
    role = boto3.client("iam", **kwargs).create_role(  # type: ignore[call-overload]
        RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    lam = boto3.client("lambda", **kwargs)  # type: ignore[call-overload]
    lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": image},
                        Role=role["Role"]["Arn"], MemorySize=256, Timeout=10)
    lam.create_function_url_config(FunctionName=name, AuthType="NONE")


def test_the_reconciler_runs_the_functions_image_pinned_to_its_digest(tmp_path: Path) -> None:
    """A function made with boto3 whose ImageUri is a tag: the data plane serves the image the tag named (by digest),
    isolated in its root filesystem when it has a runtime base, else on the host runtime, saying why."""
    if os.geteuid() != 0:
        pytest.skip("unpacking for a chroot needs root")
    state = tmp_path / "state"
    with ControlPlane(state_dir=state) as cp:
        base = from_layout(_placeholder_base(tmp_path / "base"), "lambda")
        based = build_model_image(load_spec(_model(tmp_path / "based")), base, tmp_path / "images" / "b")
        plain = build_model_image(load_spec(_model(tmp_path / "plain")), resolve_base("lambda", "none"),
                                  tmp_path / "images" / "p")
        based_uri, plain_uri = push_built(based, cp.url, "mlfn-based"), push_built(plain, cp.url, "mlfn-plain")
        _function_made_with_boto3(cp, "based", based_uri.split("@")[0] + ":latest")
        _function_made_with_boto3(cp, "plain", plain_uri)
        dp = DataPlane(state, persist=False, control_plane=cp.url)
        dp.start()
        try:
            deadline = time.monotonic() + 120  # the reconciler's pass every second; the images unpack once
            targets: dict[str, Any] = {}
            while len(targets) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
                targets = {t["name"]: t for t in dp.status()["targets"]}
        finally:
            dp.stop()
    assert targets["based"]["config"]["image"] == based_uri  # the tag, pinned to the digest it named
    assert targets["based"]["isolation"].startswith("image mlfn-based@sha256:"), targets["based"]["isolation"]
    assert "in a chroot" in targets["based"]["isolation"]
    assert targets["plain"]["isolation"].startswith("host runtime"), targets["plain"]["isolation"]
    assert "the image has no runtime base" in targets["plain"]["isolation"]
    assert Path(targets["plain"]["config"]["model_dir"]) == state / "models" / plain.digest.split(":")[1]


def test_image_config_command_replaces_the_images_cmd(tmp_path: Path) -> None:
    """ImageConfig.Command (the function's, from the control plane) replaces the image's CMD: the handler that runs."""
    from mlfn.cli.local.config import FunctionConfig
    from mlfn.cli.local.logsink import FileLogSink
    from mlfn.cli.local.sandbox import Sandbox

    run = image_rootfs.ImageRun("x", rootfs=str(tmp_path), entrypoint=("/usr/bin/python3", "-m", "awslambdaric"),
                                cmd=("mlfn.runtime.lambda_handler.handler",))
    for command, handler in (([], "mlfn.runtime.lambda_handler.handler"), (["broken.handler"], "broken.handler")):
        config = FunctionConfig(name="f", model_dir=str(tmp_path), image_command=command)
        sandbox = Sandbox(config, FileLogSink(tmp_path / "logs"), run=run)
        argv = sandbox._command()
        assert argv[argv.index("--") + 1:] == ["/usr/bin/python3", "-m", "awslambdaric", handler]
        assert sandbox._environment()["_HANDLER"] == handler
