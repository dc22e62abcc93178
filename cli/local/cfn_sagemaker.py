"""`AWS::SageMaker::InferenceComponent` for the emulator (moto has none), stored by `sagemaker_api`."""

from __future__ import annotations

import contextlib
from typing import Any

from . import sagemaker_api
from .cfn_base import EmulatedResource, register


@register
class InferenceComponentResource(EmulatedResource):
    type_name = "AWS::SageMaker::InferenceComponent"
    name_property = "InferenceComponentName"
    attribute_names = ("InferenceComponentArn", "InferenceComponentName", "InferenceComponentStatus", "CreationTime",
                       "LastModifiedTime")

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> InferenceComponentResource:
        copies = (properties.get("RuntimeConfig") or {}).get("CopyCount", 1)
        sagemaker_api.create_inference_component(
            account, region, name, properties["EndpointName"], properties.get("VariantName") or "AllTraffic",
            properties.get("Specification") or {}, int(copies), properties.get("Tags"),
        )
        self = cls(name, properties, account, region)
        self.physical_id = f"arn:aws:sagemaker:{region}:{account}:inference-component/{name}"
        return self

    def change(self, name: str, properties: dict[str, Any]) -> InferenceComponentResource:
        if name != self.name or properties["EndpointName"] != self.properties["EndpointName"]:
            return super().change(name, properties)  # type: ignore[return-value]
        copies = (properties.get("RuntimeConfig") or {}).get("CopyCount")
        sagemaker_api.update_inference_component(
            self.account, self.region, self.name, properties.get("Specification"),
            None if copies is None else int(copies),
        )
        self.properties = properties
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(sagemaker_api.ValidationError):
            sagemaker_api.delete_inference_component(self.account, self.region, self.name)

    def attributes(self) -> dict[str, Any]:
        component = sagemaker_api.find_inference_component(self.account, self.region, self.name)
        return {
            "InferenceComponentArn": component.arn,
            "InferenceComponentName": component.name,
            "InferenceComponentStatus": component.status,
            "CreationTime": component.created,
            "LastModifiedTime": component.last_modified,
        }
