"""The fallback for resource types neither moto nor the emulator implements (AWS::CDK::Metadata, capacity-provider
associations, REST API stages, ...): the resource is recorded with its properties so the stack deploys whole. `Ref`
gives its name (its `<Kind>Name` or `Name` property when it has one, e.g. a Stage's StageName), `Fn::GetAtt X.Arn` an
ARN in the type's service, any other attribute the name. Nothing else happens, and the stack event for it says so.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .cfn_base import EmulatedResource

log = logging.getLogger("mlfn.local")


class GenericResource(EmulatedResource):
    """A record of a resource the emulator does not implement."""

    status_reason = "recorded by the emulator without behaviour"
    _classes: dict[str, type[GenericResource]] = {}

    @classmethod
    def for_type(cls, resource_type: str) -> type[GenericResource]:
        """One subclass per resource type, so moto's per-type lookups see the right type name."""
        if resource_type not in cls._classes:
            name = re.sub(r"\W", "", resource_type.replace("::", "_"))
            cls._classes[resource_type] = type(f"Generic_{name}", (cls,), {"type_name": resource_type})
        return cls._classes[resource_type]

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> GenericResource:
        log.info("emulating %s %s without behaviour", cls.type_name, name)
        kind = cls.type_name.rsplit("::", 1)[-1]
        explicit = next(
            (properties[p] for p in (f"{kind}Name", "Name") if isinstance(properties.get(p), str)), None
        )
        return cls(explicit or name, properties, account, region)

    def change(self, name: str, properties: dict[str, Any]) -> GenericResource:
        self.properties = properties
        return self

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name.endswith("Arn"):
            service = self.type_name.split("::")[1].lower()
            kind = self.type_name.split("::")[-1].lower()
            return f"arn:aws:{service}:{self.region}:{self.account}:{kind}/{self.physical_id}"
        return self.physical_id
