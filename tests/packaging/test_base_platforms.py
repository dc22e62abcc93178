"""The Dockerfile bases hold the runtime's pinned wheels, and say which Python and glibc a model's own
requirements.txt layer must be resolved for (labels `dev.mlfn.python`, `dev.mlfn.glibc`).

The images themselves cannot be pulled or built here (no Docker engine, no registry beyond PyPI), so this checks
what can be checked: each Dockerfile's FROM image against what AWS and the distributions document for it, and, with
pip against PyPI, that every pin the Dockerfile installs has a wheel for that Python and glibc.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlfn.cli.packaging.dependencies import GLIBC_LABEL, PYTHON_LABEL, ImagePlatform
from mlfn.cli.packaging.dockerfile_build import GPU_PINS, ONNXRUNTIME_GPU
from mlfn.cli.packaging.offline_base import pinned
from mlfn.cli.packaging.own_files import package_file

# What each FROM image runs, with where that is written down:
# - python3.11 runs on Amazon Linux 2 and python3.12 on Amazon Linux 2023 (Lambda guide, "Building Lambda functions
#   with Python", runtimes table); AL2's glibc is 2.26 and AL2023's 2.34 (AL2023 packages glibc-2.34-*.amzn2023).
# - nvidia/cuda:*-ubuntu24.04: Ubuntu 24.04 ships python3 3.12 and glibc 2.39.
FROM_IMAGES = {
    "public.ecr.aws/lambda/python:3.11": ImagePlatform("3.11", "2.26"),
    "public.ecr.aws/lambda/python:3.12": ImagePlatform("3.12", "2.34"),
    "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04": ImagePlatform("3.12", "2.39"),
}


def dockerfile(flavour: str) -> str:
    return package_file("mlfn.runtime", f"images/Dockerfile.{flavour}").read_text(encoding="utf-8")


def from_image(text: str) -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", text, flags=re.M)
    assert match, "the Dockerfile names its FROM image in ARG BASE_IMAGE"
    return match.group(1)


def labels(text: str) -> dict[str, str]:
    return dict(re.findall(r'(dev\.mlfn\.[\w.]+)="([^"]*)"', text))


def installed_pins(flavour: str) -> list[str]:
    """The pins the Dockerfile installs (the same files `mlfn runtime build` puts into its build context)."""
    runtime = [line.strip() for line in package_file("mlfn.runtime", "requirements.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    runtime = [pin.split("#")[0].strip() for pin in runtime]
    if flavour == "lambda":
        cli = package_file("mlfn.cli", "requirements.txt").read_text().splitlines()
        return runtime + [line.split("#")[0].strip() for line in cli if line.startswith("awslambdaric==")]
    gpu = pinned(package_file("mlfn.runtime", GPU_PINS), ONNXRUNTIME_GPU)
    return [pin for pin in runtime if not pin.startswith("onnxruntime==")] + [gpu]


@pytest.mark.parametrize("flavour", ["lambda", "gpu"])
def test_a_dockerfile_base_labels_the_python_and_glibc_of_its_from_image(flavour: str) -> None:
    text = dockerfile(flavour)
    image = from_image(text)
    assert image in FROM_IMAGES, f"Dockerfile.{flavour}: FROM {image}: add what it runs to FROM_IMAGES, with its source"
    platform = FROM_IMAGES[image]
    assert ImagePlatform.of(labels(text)) == platform
    assert {PYTHON_LABEL, GLIBC_LABEL} <= labels(text).keys()


@pytest.mark.parametrize("flavour", ["lambda", "gpu"])
def test_every_pin_a_dockerfile_installs_has_a_wheel_for_its_base(flavour: str, tmp_path: Path) -> None:
    """Dockerfile.lambda was FROM python:3.11 (Amazon Linux 2, glibc 2.26): numpy 2.4 and onnxruntime 1.32 publish
    no wheel that glibc loads, so `pip install --only-binary=:all:` in it would fail; Dockerfile.gpu asked for
    onnxruntime-gpu at the CPU build's version, 1.32.0, which PyPI does not have."""
    platform = FROM_IMAGES[from_image(dockerfile(flavour))]
    abi = "cp" + platform.python.replace(".", "")
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
            "--disable-pip-version-check", "--only-binary=:all:", "--target", str(tmp_path / "t"),
            "--python-version", platform.python, "--implementation", "cp", "--abi", abi,
            *(f"--platform={tag}_x86_64" for tag in platform.manylinux()), *installed_pins(flavour)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{flavour} base {platform}: {done.stderr[-2000:]}"
