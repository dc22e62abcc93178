"""A model's name survives packaging: a folder whose mlfn.toml does not name it is named after the folder, and the
image's model folder (/opt/mlfn/model, or the emulator's unpacked copy named by digest) answers to that same name."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from mlfn.cli.image_contents import unpack_model
from mlfn.cli.packaging.base import resolve_base
from mlfn.cli.packaging.model_image import build_model_image
from mlfn.runtime.errors import SpecError
from mlfn.runtime.spec import load_spec, named_config


def build_and_unpack(folder: Path, tmp_path: Path) -> Path:
    spec = load_spec(folder)
    built = build_model_image(spec, resolve_base("lambda", "none"), tmp_path / "layout")
    return unpack_model(built, tmp_path / "unpacked")


def model_folder(tmp_path: Path, iris_onnx: Path, name: str, toml: str | None) -> Path:
    folder = tmp_path / "src" / name
    folder.mkdir(parents=True)
    shutil.copy(iris_onnx, folder / "model.onnx")
    if toml is not None:
        (folder / "mlfn.toml").write_text(toml)
    return folder


@pytest.mark.parametrize("toml", [
    None,
    'description = "no name here"\n\n[lambda]\nmemory_mb = 512\n',
    '# the name is left empty on purpose\nname = ""  # default\ntarget = "lambda"\n',
])
def test_the_image_answers_to_the_folders_name(tmp_path: Path, iris_onnx: Path, toml: str | None) -> None:
    folder = model_folder(tmp_path, iris_onnx, "mixed", toml)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    contents = build_and_unpack(folder, tmp_path)
    assert contents.name != "mixed"  # the copy lives under another folder name, as /opt/mlfn/model does
    spec = load_spec(contents)
    assert spec.name == "mixed"
    if toml is not None:  # every other setting is the user's own
        mine, image = tomllib.loads(toml), tomllib.loads((contents / "mlfn.toml").read_text())
        assert {k: v for k, v in image.items() if k != "name"} == {k: v for k, v in mine.items() if k != "name"}
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the user's folder is left as it was


def test_a_named_model_ships_its_mlfn_toml_unchanged(tmp_path: Path, iris_onnx: Path) -> None:
    toml = 'name = "iris-prod"\ndescription = "named"\n'
    folder = model_folder(tmp_path, iris_onnx, "mixed", toml)
    assert named_config(folder, "iris-prod") is None
    contents = build_and_unpack(folder, tmp_path)
    assert (contents / "mlfn.toml").read_text() == toml and load_spec(contents).name == "iris-prod"


@pytest.mark.parametrize(("folder_name", "expected"), [("a", "model-a"), ("x" * 47 + "_y", "x" * 47),
                                                       ("7up", "model-7up")])
def test_an_odd_folder_name_still_gives_a_valid_name_in_the_image(tmp_path: Path, iris_onnx: Path,
                                                                   folder_name: str, expected: str) -> None:
    folder = model_folder(tmp_path, iris_onnx, folder_name, None)
    assert load_spec(folder).name == expected
    assert load_spec(build_and_unpack(folder, tmp_path)).name == expected


def test_a_name_that_cannot_be_set_is_a_clear_error(tmp_path: Path, iris_onnx: Path) -> None:
    folder = model_folder(tmp_path, iris_onnx, "mixed", 'name = """"""\n')
    with pytest.raises(SpecError, match="name"):
        named_config(folder, "mixed")
