"""`AWS::CodeDeploy::Application`, `DeploymentConfig` and `DeploymentGroup` for the emulator, on moto's CodeDeploy
(moto's CloudFormation has none of them), so a Lambda model's stack with `[rollout]` leaves the group its Lambda
deployments run in (`cli/local/codedeploy.py`). Property names and shapes: the CloudFormation resource references
of the three types (CloudFormation's properties are PascalCase, the API's camelCase).
"""

from __future__ import annotations

from typing import Any

from . import codedeploy
from .cfn_base import EmulatedResource, register, tags_dict


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase properties as the API's camelCase (`Alarms` -> `alarms`)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags_dict(properties.get("Tags")).items()]


@register
class Application(EmulatedResource):
    type_name = "AWS::CodeDeploy::Application"
    name_property = "ApplicationName"

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Application:
        codedeploy.backend(account, region).create_application(name, properties.get("ComputePlatform", "Server"),
                                                               _tags(properties))
        return cls(name, properties, account, region)

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        backend = codedeploy.backend(self.account, self.region)
        backend.applications.pop(self.name, None)
        backend.deployment_groups.pop(self.name, None)


@register
class DeploymentConfig(EmulatedResource):
    type_name = "AWS::CodeDeploy::DeploymentConfig"
    name_property = "DeploymentConfigName"

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> DeploymentConfig:
        routing = _camel(properties.get("TrafficRoutingConfig") or {})
        codedeploy.CUSTOM_CONFIGS[name] = codedeploy.TrafficRouting.from_config(routing)
        return cls(name, properties, account, region)

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        codedeploy.CUSTOM_CONFIGS.pop(self.name, None)


@register
class DeploymentGroup(EmulatedResource):
    type_name = "AWS::CodeDeploy::DeploymentGroup"
    name_property = "DeploymentGroupName"

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> DeploymentGroup:
        p = properties
        codedeploy.backend(account, region).create_deployment_group(
            application_name=p["ApplicationName"], deployment_group_name=name,
            deployment_config_name=p.get("DeploymentConfigName"), ec2_tag_filters=None,
            on_premises_instance_tag_filters=None, auto_scaling_groups=None, service_role_arn=p["ServiceRoleArn"],
            alarm_configuration=_camel(p.get("AlarmConfiguration")),
            auto_rollback_configuration=_camel(p.get("AutoRollbackConfiguration")),
            deployment_style=_camel(p.get("DeploymentStyle")), tags=_tags(p))
        return cls(name, properties, account, region)

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        groups = codedeploy.backend(self.account, self.region).deployment_groups
        groups.get(self.properties["ApplicationName"], {}).pop(self.name, None)
