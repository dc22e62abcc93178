"""Build a runtime base from mlfn.runtime's images/Dockerfile.<flavour> (package data; runtime_layer/images in the
sources) with a Docker engine or with buildah (vfs storage, chroot isolation: no daemon, no user namespaces), then
export it to an OCI image layout.

Both need their FROM image (the AWS Lambda Python base, or a CUDA runtime image) to be pullable; where it is not,
`mlfn runtime build` uses the offline base (`offline_base`) instead.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .offline_base import OfflineBuildError, pinned, run_step
from .own_files import mlfn_wheel, package_file
from .progress import Say

ONNXRUNTIME_GPU = "onnxruntime-gpu"
GPU_PINS = "images/onnxruntime-gpu.txt"  # its own pin: onnxruntime-gpu releases lag the CPU build's


def docker_available() -> bool:
    """A Docker engine answers (the CLI alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def buildah_available() -> bool:
    return shutil.which("buildah") is not None


def build_context(flavour: str, dest: Path, say: Say) -> Path:
    """A small build context: the Dockerfile, the runtime's pins, one extra pin, and the mlfn wheel."""
    shutil.copy(package_file("mlfn.runtime", f"images/Dockerfile.{flavour}"), dest / "Dockerfile")
    requirements = package_file("mlfn.runtime", "requirements.txt")
    shutil.copy(requirements, dest / "requirements.txt")
    if flavour == "lambda":
        (dest / "awslambdaric.txt").write_text(pinned(package_file("mlfn.cli", "requirements.txt"), "awslambdaric")
                                               + "\n")
    else:
        (dest / "onnxruntime-gpu.txt").write_text(pinned(package_file("mlfn.runtime", GPU_PINS), ONNXRUNTIME_GPU)
                                                  + "\n")
    mlfn_wheel(dest / "wheels", say)
    return dest


def build(builder: str, flavour: str, out: Path, ref: str, *, say: Say, from_image: str | None = None) -> None:
    """Build with `docker` or `buildah` and write the result to the OCI layout `out` as `ref`."""
    with tempfile.TemporaryDirectory(prefix="mlfn-context-") as tmp:
        context = build_context(flavour, Path(tmp), say)
        args = ["--build-arg", f"BASE_IMAGE={from_image}"] if from_image else []
        tag = f"localhost/{ref}"
        out.mkdir(parents=True, exist_ok=True)
        if builder == "docker":
            run_step("docker build", ["docker", "build", "-t", tag, *args, str(context)], say)
            archive = context / "image.tar"
            run_step("docker save", ["docker", "save", "-o", str(archive), tag], say)
            if not shutil.which("skopeo"):
                raise OfflineBuildError("skopeo is needed to turn `docker save` output into an OCI layout: "
                                        "run .ci/setup-images.sh")
            run_step("skopeo copy", ["skopeo", "copy", f"docker-archive:{archive}", f"oci:{out}:{ref}"], say)
        elif builder == "buildah":
            store = ["--storage-driver", "vfs"]
            run_step("buildah bud", ["buildah", *store, "bud", "--isolation", "chroot", "--layers", "-t", tag, *args,
                                 str(context)], say)
            run_step("buildah push", ["buildah", *store, "push", tag, f"oci:{out}:{ref}"], say)
        else:  # pragma: no cover - the command only offers docker and buildah here
            raise OfflineBuildError(f"unknown builder {builder}")
