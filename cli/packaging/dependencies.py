"""A model folder's own Python packages: its `requirements.txt` becomes one image layer at /opt/mlfn/deps.

    deps = image_dependencies(spec.directory, "lambda", "x86_64", layout)   # None without requirements.txt
    env = host_env(spec.directory)   # {"MLFN_DEPS_DIR": ...} for the emulator's sandboxes and `mlfn serve`

Wheels only, for the image's platform and Python (the base's CPython and glibc, as its labels say, on manylinux
x86_64 or aarch64, following `[lambda] architecture`), whatever machine builds: nothing is compiled. pip resolves
the requirements together with the runtime's own packages held at the versions the base has (its pins and what they
pull in), so a requirement that conflicts with them is refused, naming both, and a package with no wheel for the
platform is refused, naming it. The layer holds only what the runtime does not already have. It is cached by its
inputs (requirements text, platform, Python, the runtime's pins): an unchanged folder reuses the same layer, with
the same digest, without asking pip, and a push skips it. The runtime puts the folder on `sys.path`
(`MLFN_DEPS_DIR`) before it imports the hooks; the emulator installs the same requirements for this machine's Python
into a cache folder keyed the same way. """

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import mlfn.runtime
from mlfn.runtime.errors import MlfnError
from mlfn.runtime.hooks import DEPS_ENV
from mlfn.runtime.spec import ModelSpec

from . import digests
from .layer import Layer, LayerError, model_entries
from .oci import Layout, canonical_json

REQUIREMENTS = "requirements.txt"
DEPS_PREFIX = "opt/mlfn/deps"
DEPS_DIR = "/" + DEPS_PREFIX
FORMAT = "mlfn-deps-v1"  # bump when the layer's making changes, so cached layers are not reused
RUNTIME_PINS = Path(mlfn.runtime.__file__).resolve().parent / "requirements.txt"
PIP_TIMEOUT_S = 900
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}  # [lambda] architecture -> wheel platform machine
PYTHON_LABEL = "dev.mlfn.python"  # a base image's Python (major.minor), as its image config labels it
GLIBC_LABEL = "dev.mlfn.glibc"  # and its C library: a manylinux_2_N wheel needs glibc 2.N or later


@dataclass(frozen=True)
class ImagePlatform:
    """The Python and glibc a base image runs packages with. A base that does not say is taken for the offline
    Debian bookworm base (python3 3.11, glibc 2.36); the Dockerfile bases label theirs."""

    python: str = "3.11"
    glibc: str = "2.36"

    @classmethod
    def of(cls, labels: dict[str, str]) -> ImagePlatform:
        return cls(labels.get(PYTHON_LABEL) or cls.python, labels.get(GLIBC_LABEL) or cls.glibc)

    def manylinux(self) -> tuple[str, ...]:
        """The manylinux tags this glibc loads, newest first (pip takes the list as it is)."""
        minor = int(self.glibc.split(".")[1])
        tags = [f"manylinux_2_{n}" for n in (minor, 28, 17) if n <= minor]
        return (*dict.fromkeys(tags), "manylinux2014")


class DependencyError(LayerError, MlfnError):
    """requirements.txt cannot become a layer: a bad line, a conflict with the runtime, no wheel, pip failed."""


@dataclass(frozen=True)
class Target:
    """Where the packages will run: an image's platform, or this machine (`platforms` empty)."""

    name: str  # for messages and cache keys: "cp311-manylinux-x86_64" or "host-cp311-linux-x86_64"
    python: str
    platforms: tuple[str, ...] = ()

    def pip_args(self) -> list[str]:
        if not self.platforms:
            return ["--only-binary=:all:"]
        abi = "cp" + self.python.replace(".", "")
        return ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", abi,
                *(f"--platform={p}" for p in self.platforms)]


def image_target(architecture: str, platform: ImagePlatform = ImagePlatform()) -> Target:
    machine = MACHINES[architecture]
    abi = "cp" + platform.python.replace(".", "")
    platforms = tuple(f"{tag}_{machine}" for tag in platform.manylinux())
    return Target(f"{abi}-manylinux-{machine}", platform.python, platforms)


def host_target() -> Target:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Target(f"host-cp{python.replace('.', '')}-{sysconfig.get_platform()}", python)


@dataclass(frozen=True)
class Resolved:
    """One package of the layer as pip resolved it."""

    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class Dependencies:
    """The layer (for an image) or the installed folder (for this machine), and what it holds."""

    packages: list[Resolved]
    target: Target
    layer: Layer | None = None
    folder: Path | None = None


def requirements_of(model_dir: Path) -> list[Requirement] | None:
    """The folder's requirements (None without requirements.txt): one `name[extras] specifier` per line; pip
    options, file references and URLs are refused (the layer must follow from the text and the index alone)."""
    path = model_dir / REQUIREMENTS
    if not path.is_file():
        return None
    found: list[Requirement] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{REQUIREMENTS} line {number}"
        if line.startswith("-"):
            raise DependencyError(f"{where}: {line!r}: pip options are not supported; expected one requirement "
                                  "per line, like 'pillow==11.3.0'")
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise DependencyError(f"{where}: {line!r} is not a requirement ({exc}); expected e.g. "
                                  "'pillow==11.3.0'") from None
        if req.url:
            raise DependencyError(f"{where}: {line!r}: direct URLs are not supported; name a package on the index")
        found.append(req)
    return found


def runtime_pins(flavour: str) -> list[str]:
    """The runtime's own pins (runtime_layer/requirements.txt), plus the runtime interface client on Lambda."""
    pins = [line.strip() for line in RUNTIME_PINS.read_text().splitlines() if line.strip()[:1].isalnum()]
    if flavour == "lambda":
        cli_requirements = Path(__file__).resolve().parents[1] / "requirements.txt"
        pins += [line.strip() for line in cli_requirements.read_text().splitlines()
                 if line.strip().lower().startswith("awslambdaric==")]
    return pins


def check_pins(requirements: list[Requirement], pins: list[str]) -> None:
    """Refuse a requirement on a package the runtime pins that excludes the pinned version, naming both."""
    pinned = {canonicalize_name(Requirement(p).name): p for p in pins}
    for req in requirements:
        pin = pinned.get(canonicalize_name(req.name))
        if pin is None:
            continue
        version = pin.split("==", 1)[1]
        if not req.specifier.contains(version, prereleases=True):
            raise DependencyError(f"{REQUIREMENTS}: {req} conflicts with the runtime's pin {pin} "
                                  f"({RUNTIME_PINS.parent.name}/requirements.txt): every image already has {pin}; "
                                  f"allow that version or drop the line")


def _pip(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    try:
        # stderr and stdout together: pip explains a conflict on stdout and fails on stderr
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=PIP_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DependencyError(f"{what}: pip did not finish within {PIP_TIMEOUT_S}s") from None


NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def _refusal(proc: subprocess.CompletedProcess[str], target: Target, what: str) -> DependencyError:
    """What pip's failure means, in one message: no wheel for the platform, a conflict, or pip's last line."""
    err = proc.stdout
    lines = [line.strip() for line in err.splitlines() if line.strip() and not line.lstrip().startswith("WARNING")]
    missing = NO_MATCH.search(err)
    if missing:
        return DependencyError(f"{what}: no wheel of {missing.group(1)} for {target.name} (CPython {target.python}"
                               f"{', ' + ' / '.join(target.platforms) if target.platforms else ''}); mlfn installs "
                               "wheels only and compiles nothing: pick a version that publishes such a wheel, or "
                               "drop the package")
    if "ResolutionImpossible" in err:
        causes = [line for line in lines if line.startswith("The user requested") or " depends on " in line]
        return DependencyError(f"{what}: conflicts with the runtime's packages (held at the versions the image "
                               "has): " + "; ".join(causes or lines[-3:]))
    return DependencyError(f"{what}: pip failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")


def _report(args: list[str], target: Target, what: str, tmp: Path) -> list[dict[str, Any]]:
    report = tmp / "report.json"
    proc = _pip(["install", "--dry-run", "--ignore-installed", "--progress-bar=off", "--report", str(report),
                 "--target", str(tmp / "unused"), *target.pip_args(), *args], what)
    if proc.returncode != 0:
        raise _refusal(proc, target, what)
    install: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    return install


def runtime_closure(target: Target, pins: list[str], cache: Path) -> dict[str, str]:
    """Every package the runtime's pins bring, name -> version, as pip resolves them for `target` (cached)."""
    key = digests.hex_of(digests.of_bytes(canonical_json([FORMAT, target.name, list(target.platforms), pins])))
    record = cache / f"runtime-{key[:16]}.json"
    if record.is_file():
        closure: dict[str, str] = json.loads(record.read_text())
        return closure
    with tempfile.TemporaryDirectory(prefix="mlfn-deps-") as tmp:
        items = _report(pins, target, "the runtime's own pins", Path(tmp))
    closure = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    cache.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(closure, indent=1, sort_keys=True))
    return closure


def resolve(requirements: list[Requirement], target: Target, pins: list[str], cache: Path) -> list[Resolved]:
    """The packages the layer needs (not those the runtime has), exact versions and wheel hashes, for `target`."""
    check_pins(requirements, pins)
    closure = runtime_closure(target, pins, cache)
    with tempfile.TemporaryDirectory(prefix="mlfn-deps-") as tmp:
        constraints = Path(tmp) / "runtime-constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(closure.items())))
        items = _report(["-c", str(constraints), *map(str, requirements)], target, REQUIREMENTS, Path(tmp))
    packages = []
    for item in items:
        name = canonicalize_name(item["metadata"]["name"])
        if name in closure:
            continue
        hashes = (item.get("download_info", {}).get("archive_info") or {}).get("hashes") or {}
        if "sha256" not in hashes:
            raise DependencyError(f"{REQUIREMENTS}: the index gave no sha256 for {name}: it cannot be pinned")
        packages.append(Resolved(name, item["metadata"]["version"], hashes["sha256"]))
    return sorted(packages, key=lambda p: p.name)


def install(packages: list[Resolved], target: Target, dest: Path) -> None:
    """Unpack exactly the resolved wheels (hash-checked) into `dest`, without scripts or bytecode, so the folder is
    the same wherever and whenever it is made."""
    dest.mkdir(parents=True, exist_ok=True)
    if not packages:
        return
    with tempfile.TemporaryDirectory(prefix="mlfn-deps-") as tmp:
        locked = Path(tmp) / "locked.txt"
        locked.write_text("".join(p.line() + "\n" for p in packages))
        proc = _pip(["install", "--quiet", "--no-deps", "--no-compile", "--ignore-installed", "--require-hashes",
                     "--target", str(dest), *target.pip_args(), "-r", str(locked)], REQUIREMENTS)
    if proc.returncode != 0:
        raise _refusal(proc, target, REQUIREMENTS)
    # Console scripts carry this machine's interpreter path in their first line: hooks import packages, so
    # scripts are left out, and so are their RECORD lines.
    shutil.rmtree(dest / "bin", ignore_errors=True)
    for record in dest.glob("*.dist-info/RECORD"):
        kept = [line for line in record.read_text().splitlines(keepends=True) if not line.startswith("../")]
        record.write_text("".join(kept))


def inputs_key(model_dir: Path, target: Target, pins: list[str]) -> str:
    """What the layer is made from: requirements text, platform, Python and the runtime's pins."""
    text = (model_dir / REQUIREMENTS).read_text(encoding="utf-8")
    return digests.of_bytes(canonical_json([FORMAT, text, target.name, list(target.platforms), target.python, pins]))


def default_cache() -> Path:
    from .base import mlfn_home

    return (mlfn_home() / "cache" / "deps").resolve()


def _image_inputs(model_dir: Path, flavour: str, architecture: str, cache: Path | None,
                  platform: ImagePlatform) -> tuple[list[Requirement], Target, list[str], str, Path] | None:
    requirements = requirements_of(model_dir)
    if requirements is None:
        return None
    cache = cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    target, pins = image_target(architecture, platform), runtime_pins(flavour)
    return requirements, target, pins, inputs_key(model_dir, target, pins), cache


def _resolved_once(record: Path, requirements: list[Requirement], target: Target, pins: list[str],
                   cache: Path) -> list[Resolved]:
    """The resolution kept in `record` (the inputs' key names it), made by pip the first time."""
    if record.is_file():
        return [Resolved(**p) for p in json.loads(record.read_text())]
    packages = resolve(requirements, target, pins, cache)
    record.write_text(json.dumps([p.__dict__ for p in packages], indent=1))
    return packages


def image_packages(model_dir: Path, flavour: str, architecture: str, cache: Path | None = None,
                   platform: ImagePlatform = ImagePlatform()) -> Dependencies | None:
    """What the image's dependency layer holds (resolved, not installed), or None without requirements.txt."""
    inputs = _image_inputs(model_dir, flavour, architecture, cache, platform)
    if inputs is None:
        return None
    requirements, target, pins, key, cache = inputs
    record = cache / f"resolved-{digests.hex_of(key)[:16]}.json"
    return Dependencies(_resolved_once(record, requirements, target, pins, cache), target)


def image_dependencies(model_dir: Path, flavour: str, architecture: str, layout: Layout,
                       cache: Path | None = None, platform: ImagePlatform = ImagePlatform()) -> Dependencies | None:
    """The dependency layer of an image (written into `layout`), or None when the folder has no requirements.txt.
    Reused from `cache` while its inputs are unchanged, so its digest stays the same and nothing is re-resolved."""
    from .offline_base import _cached_layer

    inputs = _image_inputs(model_dir, flavour, architecture, cache, platform)
    if inputs is None:
        return None
    requirements, target, pins, key, cache = inputs
    record = cache / f"resolved-{digests.hex_of(key)[:16]}.json"
    with tempfile.TemporaryDirectory(prefix="mlfn-deps-") as tmp:
        folder = Path(tmp) / "deps"

        def make() -> list[Any]:
            install(_resolved_once(record, requirements, target, pins, cache), target, folder)
            return model_entries(folder, prefix=DEPS_PREFIX)

        layer = _cached_layer("deps", key, make, cache, layout, lambda _: None)
    return Dependencies(_resolved_once(record, requirements, target, pins, cache), target, layer=layer)


def host_dependencies(model_dir: Path, cache: Path | None = None) -> Dependencies | None:
    """The same requirements installed for this machine's Python, in `<cache>/host-<key>` (made once)."""
    requirements = requirements_of(model_dir)
    if requirements is None:
        return None
    cache = cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    # this machine runs both the Lambda sandboxes (awslambdaric) and the servers: hold all of their packages
    target, pins = host_target(), runtime_pins("lambda")
    key = inputs_key(model_dir, target, pins)
    folder = cache / f"host-{digests.hex_of(key)[:16]}"
    record = folder.with_suffix(".json")
    packages = _resolved_once(record, requirements, target, pins, cache)
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".host-", dir=cache))
        try:
            install(packages, target, tmp)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Dependencies(packages, target, folder=folder)


def host_env(model_dir: str | Path) -> dict[str, str]:
    """`{MLFN_DEPS_DIR: folder}` for a process that runs the folder's hooks on this machine; {} without
    requirements.txt."""
    deps = host_dependencies(Path(model_dir))
    return {DEPS_ENV: str(deps.folder)} if deps and deps.folder else {}


def describe(deps: Dependencies) -> str:
    names = ", ".join(f"{p.name} {p.version}" for p in deps.packages) or "nothing beyond the runtime's packages"
    return f"{len(deps.packages)} package(s) for {deps.target.name}: {names}"



@dataclass(frozen=True)
class ModelDependencies:
    """What `mlfn validate` reports: the image's packages, and the environment that makes them importable here."""

    image: Dependencies | None
    env: dict[str, str]

    def to_json(self) -> dict[str, Any] | None:
        if self.image is None:
            return None
        return {"target": self.image.target.name, "packages": [p.__dict__ for p in self.image.packages],
                "host_dir": self.env.get(DEPS_ENV)}


def model_dependencies(spec: ModelSpec) -> ModelDependencies:
    architecture = spec.settings.lambda_.architecture if spec.target == "lambda" else "x86_64"
    flavour = "lambda" if spec.target == "lambda" else "gpu"
    image = image_packages(spec.directory, flavour, architecture)
    return ModelDependencies(image, host_env(spec.directory) if image else {})
