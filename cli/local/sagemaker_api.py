"""SageMaker API calls mlfn needs that moto lacks or refuses, served by a subclass of moto's SageMaker response.

- Inference components (moto has none): create/describe/update/delete/list_inference_components and
  update_inference_component_runtime_config, stored in `STORES`; each is InService at once.
- Endpoint configs hosting inference components have no `ModelName` in their variants; moto insists on one.
- moto checks instance types against an old list (no g5, g6, p4d, p5): the emulator accepts any well-formed `ml.*` type.
- CreateModel (API and `AWS::SageMaker::Model`) refuses an image whose manifest in the emulator's ECR is an OCI
  manifest or index, as SageMaker does (aws/amazon-sagemaker-feedback#180); moto accepts any image.
- moto drops a model's `EnableNetworkIsolation`; the emulator keeps it and refuses a serverless variant of such a model
  (Serverless Inference lists network isolation among its feature exclusions).
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.core.responses import ActionResult
from moto.sagemaker import models as sm_models
from moto.sagemaker import urls as sm_urls
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse

from .emulated_stores import STORES, InferenceComponent, now_iso
from .registry_storage import ECR_IMAGE

OCI_MANIFESTS = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json")
INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(\d*x?large|medium|small|micro|nano|\d+xlarge|metal(-\d+xl)?)$")


def create_inference_component(
    account: str,
    region: str,
    name: str,
    endpoint_name: str,
    variant_name: str,
    specification: dict[str, Any],
    copy_count: int,
    tags: list[dict[str, str]] | None = None,
) -> InferenceComponent:
    """Host `specification` (ModelName, ComputeResourceRequirements, ...) on an existing endpoint variant."""
    backend = sm_models.sagemaker_backends[account][region]
    backend.describe_endpoint(endpoint_name)  # ValidationError "Could not find endpoint ..."
    model = specification.get("ModelName")
    if model:
        backend.describe_model(model)
    elif not specification.get("Container"):
        raise ValidationError(message="Specification must name a ModelName or a Container.")
    if not isinstance(copy_count, int) or copy_count < 0:
        raise ValidationError(message=f"RuntimeConfig.CopyCount must be an integer of at least 0, got {copy_count!r}.")
    key = (account, region, name)
    with STORES.lock:
        if key in STORES.inference_components:
            raise ValidationError(message=f"Cannot create already existing inference component \"{name}\".")
        component = InferenceComponent(
            account, region, name, endpoint_name, variant_name, specification, copy_count, tags or []
        )
        STORES.inference_components[key] = component
        STORES.save()
    return component


def find_inference_component(account: str, region: str, name: str) -> InferenceComponent:
    with STORES.lock:
        component = STORES.inference_components.get((account, region, name))
    if component is None:
        arn = f"arn:aws:sagemaker:{region}:{account}:inference-component/{name}"
        raise ValidationError(message=f"Could not find inference component \"{arn}\".")
    return component


def update_inference_component(
    account: str,
    region: str,
    name: str,
    specification: dict[str, Any] | None = None,
    copy_count: int | None = None,
) -> InferenceComponent:
    with STORES.lock:
        component = find_inference_component(account, region, name)
        if specification:
            component.specification = specification
        if copy_count is not None:
            component.copy_count = copy_count
        component.last_modified = now_iso()
        STORES.save()
    return component


def delete_inference_component(account: str, region: str, name: str) -> None:
    with STORES.lock:
        find_inference_component(account, region, name)
        del STORES.inference_components[(account, region, name)]
        STORES.save()


def _isolated(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class MlfnSageMakerResponse(SageMakerResponse):
    """moto's SageMaker API plus inference components."""

    def create_model(self) -> ActionResult:
        result = super().create_model()
        model = self.sagemaker_backend.describe_model(self._get_param("ModelName"))
        model.enable_network_isolation = _isolated(self._get_param("EnableNetworkIsolation"))
        return result

    def create_inference_component(self) -> ActionResult:
        component = create_inference_component(
            self.current_account,
            self.region,
            self._get_param("InferenceComponentName"),
            self._get_param("EndpointName"),
            self._get_param("VariantName"),
            self._get_param("Specification") or {},
            (self._get_param("RuntimeConfig") or {}).get("CopyCount", 1),
            self._get_param("Tags"),
        )
        return ActionResult({"InferenceComponentArn": component.arn})

    def describe_inference_component(self) -> ActionResult:
        name = self._get_param("InferenceComponentName")
        return ActionResult(find_inference_component(self.current_account, self.region, name).to_api())

    def update_inference_component(self) -> ActionResult:
        component = update_inference_component(
            self.current_account,
            self.region,
            self._get_param("InferenceComponentName"),
            self._get_param("Specification"),
            (self._get_param("RuntimeConfig") or {}).get("CopyCount"),
        )
        return ActionResult({"InferenceComponentArn": component.arn})

    def update_inference_component_runtime_config(self) -> ActionResult:
        component = update_inference_component(
            self.current_account,
            self.region,
            self._get_param("InferenceComponentName"),
            copy_count=(self._get_param("DesiredRuntimeConfig") or {}).get("CopyCount"),
        )
        return ActionResult({"InferenceComponentArn": component.arn})

    def delete_inference_component(self) -> ActionResult:
        delete_inference_component(self.current_account, self.region, self._get_param("InferenceComponentName"))
        return ActionResult({})

    def list_inference_components(self) -> ActionResult:
        endpoint = self._get_param("EndpointNameEquals")
        with STORES.lock:
            found = [
                c.summary()
                for (account, region, _), c in STORES.inference_components.items()
                if (account, region) == (self.current_account, self.region)
                and (not endpoint or c.endpoint_name == endpoint)
            ]
        return ActionResult({"InferenceComponents": found})


def _validate_instance_type(self: Any, instance_type: str) -> None:
    if not INSTANCE_TYPE.match(instance_type or ""):
        raise ValidationError(
            message=f"Value '{instance_type}' at 'instanceType' failed to satisfy constraint: "
            "Member must be an ML instance type such as ml.m5.large or ml.g5.xlarge"
        )


def _validate_variant_models(self: Any, production_variants: list[dict[str, Any]]) -> None:
    for variant in production_variants:
        model = variant.get("ModelName")
        if not model:
            continue
        arn = sm_models.arn_formatter("model", model, self.account_id, self.region_name)
        if model not in self._models:
            raise ValidationError(message=f"Could not find model '{arn}'.")
        if variant.get("ServerlessConfig") and self._models[model].enable_network_isolation:
            # AWS documents the exclusion, not its message: this wording is the emulator's.
            raise ValidationError(
                message=f"Network isolation is not supported for serverless endpoints: model '{arn}' has "
                f"EnableNetworkIsolation set and variant '{variant.get('VariantName')}' has a ServerlessConfig."
            )


_moto_model_from_cloudformation = sm_models.Model.create_from_cloudformation_json


def _model_from_cloudformation(resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                               **kwargs: Any) -> Any:
    """moto's AWS::SageMaker::Model, keeping EnableNetworkIsolation."""
    model = _moto_model_from_cloudformation(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    model.enable_network_isolation = _isolated(cloudformation_json["Properties"].get("EnableNetworkIsolation"))
    return model


def stored_manifest_media_type(image_uri: str) -> str | None:
    """The manifest media type of `image_uri` as the emulator's ECR stores it; None when it is not stored there."""
    from moto.ecr.models import ecr_backends

    match = ECR_IMAGE.match(image_uri or "")
    if not match:
        return None
    repository = ecr_backends[match["account"]][match["region"]].repositories.get(match["repo"])
    tag = match["tag"] or (None if match["digest"] else "latest")
    try:
        image = repository._get_image(tag, match["digest"]) if repository else None
    except Exception:  # moto's ImageNotFoundException: SageMaker's own check for that is not emulated here
        return None
    if image is None:
        return None
    return str(image.image_manifest_media_type or json.loads(image.image_manifest).get("mediaType") or "")


def refuse_oci_images(containers: list[dict[str, Any]]) -> None:
    """SageMaker's CreateModel answers 400 for an image with an OCI manifest (aws/amazon-sagemaker-feedback#180)."""
    for container in containers:
        image = str(container.get("Image") or "")
        media_type = stored_manifest_media_type(image)
        if media_type in OCI_MANIFESTS:
            raise ValidationError(message=f"Unsupported manifest media type {media_type} for image {image}. "
                                          "Ensure that valid manifest media type is used for specified image.")


_moto_create_model = sm_models.SageMakerModelBackend.create_model


def _create_model(self: Any, model_name: str, execution_role_arn: str, primary_container: dict[str, Any] | None,
                  vpc_config: dict[str, Any] | None, containers: list[dict[str, Any]] | None,
                  tags: list[dict[str, str]] | None) -> Any:
    refuse_oci_images([primary_container or {}, *(containers or [])])
    return _moto_create_model(self, model_name, execution_role_arn, primary_container, vpc_config, containers, tags)


def install() -> None:
    """Serve SageMaker with `MlfnSageMakerResponse` and relax moto's outdated checks. Idempotent."""
    for pattern in list(sm_urls.url_paths):
        sm_urls.url_paths[pattern] = MlfnSageMakerResponse.dispatch
    sm_models.FakeEndpointConfig.validate_instance_type = _validate_instance_type  # type: ignore[method-assign]
    sm_models.SageMakerModelBackend.validate_production_variants = _validate_variant_models  # type: ignore[method-assign]
    sm_models.SageMakerModelBackend.create_model = _create_model  # type: ignore[method-assign]
    sm_models.Model.create_from_cloudformation_json = staticmethod(  # type: ignore[method-assign,assignment]
        _model_from_cloudformation
    )
    # CloudFormation names these from their name properties (moto ignores them and generates names)
    sm_models.FakeEndpoint.cloudformation_name_type = staticmethod(lambda: "EndpointName")  # type: ignore[method-assign]
    sm_models.FakeEndpointConfig.cloudformation_name_type = staticmethod(  # type: ignore[method-assign]
        lambda: "EndpointConfigName"
    )
    sm_models.Model.cloudformation_name_type = staticmethod(lambda: "ModelName")  # type: ignore[method-assign]
