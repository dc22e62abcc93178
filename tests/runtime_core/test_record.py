"""`mlfn.runtime.record`: the runtime's value classes behave as frozen dataclasses do where the runtime relies on it."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest

from mlfn.runtime.record import FrozenInstanceError, field, fields, is_record, record, replace


@record
class Point:
    """A plain frozen record."""

    x: int
    y: int = 2
    tags: tuple[str, ...] = field(default=(), metadata={"doc": "labels"})
    seen: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "point"


@record(slots=True)
class Slotted:
    a: int
    b: str = "b"


@record(frozen=False, slots=True)
class Mutable:
    value: int


def test_init_takes_positional_keyword_and_defaults() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.seen) == (1, 2, (), [])
    assert Point(1, 3, tags=("a",)).tags == ("a",)
    assert Point(1).seen is not Point(1).seen  # a factory makes a fresh default each time
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, nope=3)  # type: ignore[call-arg]


def test_value_semantics_repr_and_hash() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1) != Slotted(1)
    assert hash(Slotted(1, "t")) == hash(Slotted(1, "t"))
    assert repr(Slotted(1)) == "Slotted(a=1, b='b')"
    with pytest.raises(TypeError):
        hash(Mutable(1))


def test_frozen_refuses_assignment_and_mutable_allows_it() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError, match="'x'"):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x  # type: ignore[misc]
    m = Mutable(1)
    m.value = 2
    assert m.value == 2


def test_slots_leave_no_instance_dict() -> None:
    assert Slotted.__slots__ == ("a", "b")  # type: ignore[attr-defined]
    assert not hasattr(Slotted(1), "__dict__")
    with pytest.raises(AttributeError):
        Mutable(1).other = 3  # type: ignore[attr-defined]


def test_fields_metadata_and_replace() -> None:
    assert [f.name for f in fields(Point)] == ["x", "y", "tags", "seen"]  # ClassVar is not a field
    assert fields(Point)[2].metadata == {"doc": "labels"}
    assert fields(Point)[0].type == "int"
    assert is_record(Point) and is_record(Point(1)) and not is_record(object())
    q = replace(Point(1, tags=("a",)), y=9)
    assert (q.x, q.y, q.tags) == (1, 9, ("a",))
    with pytest.raises(TypeError, match="'z'"):
        replace(Point(1), z=1)
    with pytest.raises(TypeError):
        fields(object)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="'b'"):
        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


def test_subclass_extends_its_base_fields() -> None:
    @record
    class Point3(Point):
        z: int = 0

    assert [f.name for f in fields(Point3)] == ["x", "y", "tags", "seen", "z"]
    assert Point3(1, z=4).z == 4


def test_lambda_init_path_imports_neither_dataclass_codegen_nor_logging() -> None:
    """The Lambda handler's import path stays lean: `logging`, the thread pool and `random` wait for first use."""
    code = ("import sys, mlfn.runtime.lambda_adapter; "
            "print(sorted(m for m in ('logging', 'concurrent.futures', 'random', 'fastapi') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("cls", [Point, Slotted, Mutable])
def test_the_standard_dataclass_functions_work_on_records(cls: type) -> None:
    """`dataclasses.replace` on a record crashed `cli/deploy_flow.py` once: fields, replace, asdict, astuple and
    is_dataclass work on records as on dataclasses."""
    import dataclasses

    made = {Point: lambda: Point(1, tags=("a",)), Slotted: lambda: Slotted(1), Mutable: lambda: Mutable(3)}[cls]()
    names = [f.name for f in fields(cls)]
    assert dataclasses.is_dataclass(cls) and dataclasses.is_dataclass(made)
    assert [f.name for f in dataclasses.fields(cls)] == names == [f.name for f in dataclasses.fields(made)]
    first = names[0]
    changed = dataclasses.replace(made, **{first: 9})
    assert type(changed) is cls and getattr(changed, first) == 9 and changed == replace(made, **{first: 9})
    assert dataclasses.asdict(made) == {name: getattr(made, name) for name in names}
    assert dataclasses.astuple(made) == tuple(getattr(made, name) for name in names)


def test_dataclass_fields_keep_defaults_and_metadata() -> None:
    import dataclasses

    by_name = {f.name: f for f in dataclasses.fields(Point)}
    assert by_name["y"].default == 2 and by_name["tags"].metadata["doc"] == "labels"
    assert by_name["seen"].default_factory() == []
    with pytest.raises(TypeError):
        dataclasses.replace(Point(1), nope=1)
