"""Value classes for the runtime: what `@dataclass(frozen=True)` gives, at a third of its import-time cost.

`dataclasses` generates and compiles six methods per class when the module is imported (about 0.8 ms a class
on CPython 3.11); two dozen classes on the Lambda handler's import path cost ~20 ms of every cold start. A
record compiles only its `__init__` and shares one `__repr__`, `__eq__`, `__hash__` and the frozen
`__setattr__` among all records. Type checkers see it as a dataclass (`dataclass_transform`).

    @record
    class Port:
        name: str
        rows: int = 1
        tags: tuple[str, ...] = field(default=(), metadata={"doc": "..."})

`record(slots=True)` also gives the class `__slots__`; `record(frozen=False)` allows assignment.
`fields(cls)` lists a record's fields, `replace(obj, **changes)` copies one with changes. The standard functions
work on records too (`dataclasses.fields`, `replace`, `asdict`, `astuple`, `is_dataclass`): a record's
`__dataclass_fields__` is built on first use, from a dataclass made with the same fields (public API only).

Still worth it (bench/record_vs_dataclass.py, after `import orjson`, which imports `dataclasses` on the handler's
path anyway): two dozen frozen classes cost about 12 ms more as dataclasses than as records, on every cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_MISSING: Any = object()
_FIELDS = "__record_fields__"
_DATACLASS_FIELDS = "__record_dataclass_fields__"  # the cache of `__dataclass_fields__`


class FrozenInstanceError(AttributeError):
    """An assignment to a frozen record."""


class Field:
    """One field of a record: its name, annotation (as written), default and metadata."""

    __slots__ = ("default", "default_factory", "metadata", "name", "type")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.metadata: Mapping[str, Any] = metadata or {}

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING,
          metadata: Mapping[str, Any] | None = None) -> Any:
    """A field with a default (or a factory for one) and metadata, as `dataclasses.field`."""
    return Field(default, default_factory, metadata)


def fields(cls_or_obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in declaration order."""
    found: tuple[Field, ...] | None = getattr(cls_or_obj, _FIELDS, None)
    if found is None:
        raise TypeError(f"{cls_or_obj!r} is not a record")
    return found


def is_record(obj: Any) -> bool:
    """A record class or instance."""
    return hasattr(obj, _FIELDS)


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of the record `obj` with some fields changed."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)  # type: ignore[call-arg]


class _DataclassFields:
    """A record's `__dataclass_fields__`, for the `dataclasses` functions: built on first use (never on the Lambda
    handler's path) as the fields of a dataclass with the record's fields, names, types, defaults and metadata."""

    def __get__(self, obj: Any, owner: type) -> dict[str, Any]:
        cached: dict[str, Any] | None = owner.__dict__.get(_DATACLASS_FIELDS)
        if cached is None:
            import dataclasses

            specs = []
            for f in getattr(owner, _FIELDS):
                options: dict[str, Any] = {"metadata": f.metadata} if f.metadata else {}
                if f.default is not _MISSING:  # an unhashable (mutable) default as a factory: dataclasses insists
                    options["default_factory" if type(f.default).__hash__ is None else "default"] = (
                        (lambda value=f.default: value) if type(f.default).__hash__ is None else f.default)
                elif f.default_factory is not _MISSING:
                    options["default_factory"] = f.default_factory
                specs.append((f.name, f.type, dataclasses.field(**options)))
            cached = getattr(dataclasses.make_dataclass(owner.__name__, specs), "__dataclass_fields__")  # noqa: B009
            setattr(owner, _DATACLASS_FIELDS, cached)
        return cached


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in getattr(self, _FIELDS))
    return f"{type(self).__qualname__}({inner})"


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in getattr(self, _FIELDS))


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}: {type(self).__name__} is frozen")


def _collect(cls: type) -> list[Field]:
    """The class's fields: its bases' first, then its own annotations (ClassVar excluded)."""
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, _FIELDS, ()):
            found[f.name] = f
    for name, annotation in vars(cls).get("__annotations__", {}).items():
        if "ClassVar" in str(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        made = value if isinstance(value, Field) else Field(default=value)
        made.name, made.type = name, annotation
        found[name] = made
    return list(found.values())


def _init_source(fields_: list[Field], frozen: bool) -> tuple[str, dict[str, Any]]:
    """`__init__`'s source: parameters in field order, defaults and factories read from the namespace."""
    params, body, names = [], [], {"_set": object.__setattr__, "_MISSING": _MISSING}
    for i, f in enumerate(fields_):
        if f.default is not _MISSING:
            names[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        elif f.default_factory is not _MISSING:
            names[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING: {f.name} = _f{i}()")
        else:
            if any(p.count("=") for p in params):
                raise TypeError(f"field {f.name!r} without a default follows one with a default")
            params.append(f.name)
        body.append(f"    _set(self, {f.name!r}, {f.name})" if frozen else f"    self.{f.name} = {f.name}")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    return source, names


def _make(cls: type, frozen: bool, slots: bool) -> type:
    fields_ = _collect(cls)
    source, names = _init_source(fields_, frozen)
    namespace: dict[str, Any] = {}
    exec(source, names, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    if slots:
        body = {k: v for k, v in cls.__dict__.items() if k not in {f.name for f in fields_}
                and k not in ("__dict__", "__weakref__")}
        body["__slots__"] = tuple(f.name for f in fields_ if f.name not in getattr(cls, "__slots__", ()))
        cls = type(cls)(cls.__name__, cls.__bases__, body)
    else:
        for f in fields_:  # a Field() default left on the class would shadow nothing, but reads oddly
            if isinstance(cls.__dict__.get(f.name), Field):
                if f.default is _MISSING:
                    delattr(cls, f.name)
                else:
                    setattr(cls, f.name, f.default)
    init.__module__ = cls.__module__
    methods: dict[str, Any] = {"__init__": init, _FIELDS: tuple(fields_), "__dataclass_fields__": _DataclassFields()}
    own = cls.__dict__
    if "__repr__" not in own:
        methods["__repr__"] = _repr
    if "__eq__" not in own:
        methods["__eq__"] = _eq
    if frozen:
        if own.get("__hash__") is None:
            methods["__hash__"] = _hash
        methods["__setattr__"], methods["__delattr__"] = _frozen_setattr, _frozen_delattr
    else:
        methods["__hash__"] = None  # mutable and compared by value: unhashable
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


@overload
def record(cls: type[_T], /) -> type[_T]: ...
@overload
def record(*, frozen: bool = True, slots: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: Any = None, /, *, frozen: bool = True, slots: bool = False) -> Any:
    """Make `cls` a record: `__init__` from its annotated fields, value equality, frozen unless told not."""
    if cls is None:
        return lambda c: _make(c, frozen, slots)
    return _make(cls, frozen, slots)
