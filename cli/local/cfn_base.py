"""How the emulator adds CloudFormation resource types to moto: a small base class and a registry.

moto maps a resource type to a model class (`moto.cloudformation.parsing.get_model_map`, built from the direct
subclasses of `CloudFormationModel`) and calls the class's `create/update/delete_from_cloudformation_json`; `Ref`
resolves to the instance's `physical_resource_id` and `Fn::GetAtt` to `get_cfn_attribute(name)`. `@register` puts a
class in `MODELS`, which `install()` lays over moto's map, so a registered class replaces moto's model for its type
or adds a type moto lacks. Types neither has fall back to `cfn_generic.GenericResource`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel

MODELS: dict[str, type[CloudFormationModel]] = {}
M = TypeVar("M", bound=type[CloudFormationModel])


def register(cls: M) -> M:
    """Class decorator: serve `cls.cloudformation_type()` with `cls`."""
    MODELS[cls.cloudformation_type()] = cls
    return cls


class EmulatedResource(CloudFormationModel):
    """A resource the emulator implements: `attributes` answer Fn::GetAtt, `physical_id` answers Ref.

    Subclasses implement `create(name, properties, account, region)` returning an instance and `delete()`;
    `change(properties)` updates in place, and by default replaces the resource (delete, then create), as
    CloudFormation does for properties that cannot change in place.
    """

    type_name = "AWS::Emulated::Resource"
    name_property = ""
    attribute_names: tuple[str, ...] = ()

    def __init__(self, name: str, properties: dict[str, Any], account: str, region: str) -> None:
        self.name = name
        self.properties = properties
        self.account = account
        self.region = region
        self.physical_id = name

    # ---- what subclasses provide -------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> EmulatedResource:
        return cls(name, properties, account, region)

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        """Remove what `create` made (moto's ResourceMap calls `delete(account, region)`)."""

    def change(self, name: str, properties: dict[str, Any]) -> EmulatedResource:
        self.delete()
        return type(self).create(name, properties, self.account, self.region)

    def attributes(self) -> dict[str, Any]:
        return {}

    # ---- moto's CloudFormationModel protocol -------------------------------------------------------------------
    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def cloudformation_type(cls) -> str:  # type: ignore[override]
        return cls.type_name

    @classmethod
    def cloudformation_name_type(cls) -> str:  # type: ignore[override]
        return cls.name_property

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attribute_names

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        values = self.attributes()
        if attribute_name not in values:
            raise UnformattedGetAttTemplateException()
        return values[attribute_name]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> EmulatedResource:
        return cls.create(resource_name, cloudformation_json.get("Properties") or {}, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: EmulatedResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> EmulatedResource:
        name = original_resource.name if not cls.name_property else new_resource_name
        return original_resource.change(name, cloudformation_json.get("Properties") or {})

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        """Unused: moto calls the instance's `delete` first."""

    def is_created(self) -> bool:
        return True


class HandlerAlreadyExists(Exception):
    """What CloudFormation's resource handler reports when a resource's fixed name is taken (HandlerErrorCode
    AlreadyExists), for example by a resource an earlier stack kept (DeletionPolicy Retain)."""

    def __init__(self, type_name: str, name_property: str, name: str) -> None:
        identifier = json.dumps({f"/properties/{name_property}": name}, separators=(",", ":"))
        self.message = (f"Resource handler returned message: \"Resource of type '{type_name}' with identifier "
                        f"'{identifier}' already exists.\" (RequestToken: {uuid.uuid4()}, "
                        "HandlerErrorCode: AlreadyExists)")
        super().__init__(self.message)


def tags_dict(tags: Any) -> dict[str, str]:
    """CloudFormation's `[{"Key": k, "Value": v}]` (or a dict) as a dict."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {t["Key"]: t["Value"] for t in tags or [] if "Key" in t}


_moto_model_map = parsing.get_model_map
_moto_model_list = parsing.get_model_list
_moto_name_type_map = parsing.get_name_type_map


def _model_map() -> dict[str, type[CloudFormationModel]]:
    return {**_moto_model_map(), **MODELS}


def _model_list() -> list[type[CloudFormationModel]]:
    return [*MODELS.values(), *_moto_model_list()]


def _name_type_map() -> dict[str, str]:
    return {t: m.cloudformation_name_type() for t, m in _model_map().items()}


_fallback: list[Callable[[str], type[CloudFormationModel]]] = []  # what serves a type nobody implements


def _resource_class_from_type(resource_type: str) -> type[CloudFormationModel]:
    if resource_type in parsing.NULL_MODELS:
        return None  # type: ignore[return-value]
    if resource_type.startswith("Custom::"):
        return parsing.CustomModel
    model = _model_map().get(resource_type)
    if model is None and _fallback:
        return _fallback[0](resource_type)
    return model


def install(fallback: Callable[[str], type[CloudFormationModel]]) -> None:
    """Lay `MODELS` over moto's resource map, with `fallback(type)` for the types neither implements. Idempotent."""
    _fallback[:] = [fallback]
    parsing.get_model_map = _model_map  # type: ignore[assignment]
    parsing.get_model_list = _model_list  # type: ignore[assignment]
    parsing.get_name_type_map = _name_type_map  # type: ignore[assignment]
    parsing.resource_class_from_type = _resource_class_from_type
