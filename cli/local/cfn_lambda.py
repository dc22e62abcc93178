"""CloudFormation Lambda resources as the emulator deploys them, backed by moto's Lambda backend and `STORES`.

- `AWS::Lambda::Function`: moto's model drops PackageType, ImageConfig, Architectures, EphemeralStorage and Tags;
  this one passes every property through, and updates them too.
- `AWS::Lambda::Version`: Ref is the version ARN (as in AWS), GetAtt Version; ProvisionedConcurrencyConfig honoured.
- `AWS::Lambda::Alias`, `AWS::Lambda::Url` (moto has neither), `AWS::Lambda::Permission` (moto's cannot be updated
  or deleted), `AWS::Logs::LogGroup` (moto's cannot change its retention in place).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.logs.models import logs_backends

from . import lambda_api
from .cfn_base import EmulatedResource, HandlerAlreadyExists, register, tags_dict

CONFIG_PROPERTIES = (
    "Description", "MemorySize", "Timeout", "VpcConfig", "Environment", "ReservedConcurrentExecutions", "PackageType",
    "ImageConfig", "Architectures", "EphemeralStorage", "Layers", "TracingConfig", "KmsKeyArn", "Handler", "Runtime",
    "DeadLetterConfig", "LoggingConfig", "SnapStart",
)


def function_name_of(name_or_arn: str) -> tuple[str, str | None]:
    """(function name, qualifier) from a name, `name:qualifier`, or a function ARN with or without qualifier."""
    parts = name_or_arn.split(":")
    if name_or_arn.startswith("arn:"):
        return parts[6], (parts[7] if len(parts) > 7 else None)
    return parts[0], (parts[1] if len(parts) > 1 else None)


@register
class Function(LambdaFunction):
    """moto's LambdaFunction, created and updated with every property the template gives."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Function"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> LambdaFunction:
        properties = cloudformation_json["Properties"]
        spec = {k: properties[k] for k in CONFIG_PROPERTIES if k in properties}
        spec.update(Code=properties["Code"], FunctionName=resource_name, Role=properties["Role"])
        spec["Tags"] = tags_dict(properties.get("Tags"))
        if "ZipFile" in spec["Code"]:
            return LambdaFunction.create_from_cloudformation_json(
                resource_name, cloudformation_json, account_id, region_name, **kwargs
            )
        return get_backend(account_id, region_name).create_function(spec)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: LambdaFunction,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> LambdaFunction:
        properties = cloudformation_json["Properties"]
        fn = original_resource
        fn.update_configuration(properties)
        fn.update_function_code(properties["Code"])
        if "ImageConfig" in properties:
            fn.image_config = type(fn.image_config)(properties["ImageConfig"])
        if "EphemeralStorage" in properties:
            fn.ephemeral_storage = properties["EphemeralStorage"]["Size"]
        if "Architectures" in properties:
            fn.architectures = properties["Architectures"]
        fn.reserved_concurrency = properties.get("ReservedConcurrentExecutions")
        fn.tags = tags_dict(properties.get("Tags"))
        return fn

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "SnapStartResponse.ApplyOn")


@register
class Version(EmulatedResource):
    type_name = "AWS::Lambda::Version"
    attribute_names = ("Version", "FunctionArn")

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Version:
        function_name, _ = function_name_of(properties["FunctionName"])
        backend = get_backend(account, region)
        published = backend.publish_version(function_name, properties.get("Description", ""))
        if published is None:
            raise lambda_api.UnknownFunctionException(function_name)
        self = cls(name, properties, account, region)
        self.function_name, self.version = function_name, str(published.version)
        self.physical_id = f"arn:aws:lambda:{region}:{account}:function:{function_name}:{self.version}"
        pc = (properties.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
        if pc:
            lambda_api.put_provisioned_concurrency(backend, account, region, function_name, self.version, int(pc))
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        lambda_api.delete_provisioned_concurrency(self.account, self.region, self.function_name, self.version)
        with contextlib.suppress(Exception):  # the function (and its versions) may be gone already
            get_backend(self.account, self.region).delete_function(self.function_name, self.version)

    def attributes(self) -> dict[str, Any]:
        return {"Version": self.version, "FunctionArn": self.physical_id}


class DeploymentNotSucceeded(RuntimeError):
    """The CodeDeploy deployment that an alias's CodeDeployLambdaAliasUpdate policy started did not succeed."""


@register
class Alias(EmulatedResource):
    type_name = "AWS::Lambda::Alias"
    attribute_names = ("AliasArn",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Alias:
        self = cls(properties["Name"], properties, account, region)
        self.function_name, _ = function_name_of(properties["FunctionName"])
        backend = get_backend(account, region)
        backend.get_function(self.function_name, str(properties["FunctionVersion"]))
        alias = backend.create_alias(
            self.name, self.function_name, str(properties["FunctionVersion"]), properties.get("Description", ""),
            properties.get("RoutingConfig"),  # type: ignore[arg-type]
        )
        self.physical_id = alias.arn
        self._provision(properties)
        return self

    def _provision(self, properties: dict[str, Any]) -> None:
        pc = (properties.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
        if pc:
            lambda_api.put_provisioned_concurrency(
                get_backend(self.account, self.region), self.account, self.region, self.function_name, self.name,
                int(pc),
            )
        else:
            lambda_api.delete_provisioned_concurrency(self.account, self.region, self.function_name, self.name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: Alias, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> EmulatedResource:
        """As the base class, remembering the resource's UpdatePolicy (`CodeDeployLambdaAliasUpdate`)."""
        original_resource.update_policy = cloudformation_json.get("UpdatePolicy") or {}
        return super().update_from_cloudformation_json(original_resource, new_resource_name, cloudformation_json,
                                                       account_id, region_name)

    def change(self, name: str, properties: dict[str, Any]) -> Alias:
        function_name, _ = function_name_of(properties["FunctionName"])
        if properties["Name"] != self.name or function_name != self.function_name:
            return super().change(name, properties)  # type: ignore[return-value]
        backend = get_backend(self.account, self.region)
        current = str(backend.get_alias(self.name, self.function_name).function_version)
        target = str(properties["FunctionVersion"])
        policy = (getattr(self, "update_policy", None) or {}).get("CodeDeployLambdaAliasUpdate")
        if policy and target != current:  # CodeDeploy moves the alias step by step; the update waits for it
            self._wait(self._deploy(policy, current, target))
        else:
            backend.update_alias(
                self.name, self.function_name, target, properties.get("Description", ""),
                properties.get("RoutingConfig"),  # type: ignore[arg-type]
            )
        self.properties = properties
        self._provision(properties)
        return self

    def _deploy(self, policy: dict[str, Any], current: str, target: str) -> str:
        """A CodeDeploy Lambda deployment of this alias from `current` to `target` in the policy's application and
        deployment group, with its BeforeAllowTraffic hook (the AppSpec CloudFormation gives CodeDeploy)."""
        from . import codedeploy

        spec = {"version": 0.0, "Resources": [{self.function_name: {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": self.function_name, "Alias": self.name, "CurrentVersion": current, "TargetVersion": target}}}],
            "Hooks": ([{"BeforeAllowTraffic": policy["BeforeAllowTrafficHook"]}]
                      if policy.get("BeforeAllowTrafficHook") else [])}
        revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}}
        return str(codedeploy.backend(self.account, self.region).create_deployment(
            application_name=policy["ApplicationName"], deployment_group_name=policy["DeploymentGroupName"],
            revision=revision, description=f"CloudFormation: alias {self.name} {current} -> {target}"))

    def _wait(self, deployment_id: str) -> None:
        """CloudFormation finishes the alias's update (and only then cleans up, e.g. deletes the old version) when
        the deployment ends; one that did not succeed fails the update, naming its error."""
        from . import codedeploy

        deployment = codedeploy.backend(self.account, self.region).deployments[deployment_id]
        run = codedeploy.RUNS.get(deployment_id)
        if run is not None and run.thread is not None:
            run.thread.join()
        if deployment.status != "Succeeded":
            error = getattr(deployment, "_mlfn_error", {}) or {}
            raise DeploymentNotSucceeded(
                f"CodeDeploy deployment {deployment_id} of alias {self.name} ended {deployment.status}: "
                f"{error.get('code', '')} {error.get('message', '')}".rstrip())

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        lambda_api.delete_provisioned_concurrency(self.account, self.region, self.function_name, self.name)
        with contextlib.suppress(Exception):  # the function may be gone already
            get_backend(self.account, self.region).delete_alias(self.name, self.function_name)

    def attributes(self) -> dict[str, Any]:
        return {"AliasArn": self.physical_id}


@register
class Url(EmulatedResource):
    """A Function URL; `Fn::GetAtt Url.FunctionUrl` is the emulator's HTTPS URL (see `function_urls`)."""

    type_name = "AWS::Lambda::Url"
    attribute_names = ("FunctionUrl", "FunctionArn")

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Url:
        function_name, qualifier = function_name_of(properties["TargetFunctionArn"])
        qualifier = properties.get("Qualifier") or qualifier
        url = lambda_api.put_function_url(
            get_backend(account, region), account, region, function_name, qualifier, properties
        )
        self = cls(name, properties, account, region)
        self.function_name, self.qualifier, self.url = function_name, qualifier, url.url
        self.physical_id = url.function_arn
        return self

    def change(self, name: str, properties: dict[str, Any]) -> Url:
        function_name, qualifier = function_name_of(properties["TargetFunctionArn"])
        if (function_name, properties.get("Qualifier") or qualifier) != (self.function_name, self.qualifier):
            return super().change(name, properties)  # type: ignore[return-value]
        config = {"AuthType": properties["AuthType"], "Cors": properties.get("Cors"),
                  "InvokeMode": properties.get("InvokeMode")}
        lambda_api.update_function_url(self.account, self.region, self.function_name, self.qualifier, config)
        self.properties = properties
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # already gone
            lambda_api.delete_function_url(self.account, self.region, self.function_name, self.qualifier)

    def attributes(self) -> dict[str, Any]:
        return {"FunctionUrl": self.url, "FunctionArn": self.physical_id}


@register
class Permission(EmulatedResource):
    """A statement in the function's resource policy (InvokeFunction, InvokeFunctionUrl, ...)."""

    type_name = "AWS::Lambda::Permission"

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Permission:
        function_name, qualifier = function_name_of(properties["FunctionName"])
        statement = {k: v for k, v in properties.items() if k != "FunctionName"}
        statement["StatementId"] = name
        statement["Action"] = properties["Action"]
        get_backend(account, region).add_permission(function_name, qualifier, json.dumps(statement))
        self = cls(name, properties, account, region)
        self.function_name, self.qualifier = function_name, qualifier
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the function (or the statement) is gone already
            get_backend(self.account, self.region).remove_permission(self.function_name, self.name, "")


@register
class LogGroup(EmulatedResource):
    type_name = "AWS::Logs::LogGroup"
    name_property = "LogGroupName"
    attribute_names = ("Arn",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> LogGroup:
        backend = logs_backends[account][region]
        if name in backend.groups:  # a group kept by a deleted or rolled-back stack (DeletionPolicy Retain)
            raise HandlerAlreadyExists(cls.type_name, cls.name_property, name)
        backend.create_log_group(name, tags_dict(properties.get("Tags")))
        self = cls(name, properties, account, region)
        self._retention(properties)
        return self

    def _retention(self, properties: dict[str, Any]) -> None:
        backend = logs_backends[self.account][self.region]
        days = properties.get("RetentionInDays")
        if days:
            backend.put_retention_policy(self.name, int(days))
        else:
            backend.delete_retention_policy(self.name)

    def change(self, name: str, properties: dict[str, Any]) -> LogGroup:
        if name != self.name:
            return super().change(name, properties)  # type: ignore[return-value]
        self._retention(properties)
        self.properties = properties
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # already gone
            logs_backends[self.account][self.region].delete_log_group(self.name)

    def attributes(self) -> dict[str, Any]:
        return {"Arn": f"arn:aws:logs:{self.region}:{self.account}:log-group:{self.name}:*"}


__all__ = ["Alias", "Function", "LogGroup", "Permission", "UnformattedGetAttTemplateException", "Url", "Version"]
