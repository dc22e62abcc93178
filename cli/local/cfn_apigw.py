"""API Gateway v2 (HTTP APIs) for the emulator: CloudFormation Api/Integration/Route/Stage on moto's apigatewayv2
backend (moto's CloudFormation has none of them). An Api's endpoint is an HTTPS address on 127.0.0.1 (a free port,
like Function URLs) rather than `*.execute-api.amazonaws.com`; `apigatewayv2.get_api` returns it too.
"""

from __future__ import annotations

import contextlib
from typing import Any

from moto.apigatewayv2.models import apigatewayv2_backends

from .cfn_base import EmulatedResource, register, tags_dict
from .function_urls import free_port


def backend(account: str, region: str) -> Any:
    return apigatewayv2_backends[account][region]


def _api_settings(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """The Api properties that both creating and updating an API take (moto's keyword names)."""
    p = properties
    return {
        "api_key_selection_expression": p.get("ApiKeySelectionExpression"),
        "cors_configuration": p.get("CorsConfiguration"),
        "description": p.get("Description"),
        "disable_schema_validation": p.get("DisableSchemaValidation"),
        "disable_execute_api_endpoint": p.get("DisableExecuteApiEndpoint"),
        "name": p.get("Name") or name,
        "route_selection_expression": p.get("RouteSelectionExpression"),
        "version": p.get("Version"),
    }


@register
class Api(EmulatedResource):
    type_name = "AWS::ApiGatewayV2::Api"
    attribute_names = ("ApiEndpoint", "ApiId")

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Api:
        api = backend(account, region).create_api(
            **_api_settings(properties, name), protocol_type=properties.get("ProtocolType", "HTTP"),
            tags=tags_dict(properties.get("Tags")),
        )
        api.api_endpoint = f"https://127.0.0.1:{free_port()}"
        self = cls(name, properties, account, region)
        self.api = api
        self.physical_id = api.api_id
        return self

    def change(self, name: str, properties: dict[str, Any]) -> Api:
        self.api.update(**_api_settings(properties, self.name))
        self.properties = properties
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        backend(self.account, self.region).delete_api(self.physical_id)

    def attributes(self) -> dict[str, Any]:
        return {"ApiEndpoint": self.api.api_endpoint, "ApiId": self.physical_id}


@register
class Integration(EmulatedResource):
    type_name = "AWS::ApiGatewayV2::Integration"
    attribute_names = ("IntegrationId",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Integration:
        p = properties
        integration = backend(account, region).create_integration(
            api_id=p["ApiId"],
            connection_id=p.get("ConnectionId"),
            connection_type=p.get("ConnectionType"),
            content_handling_strategy=p.get("ContentHandlingStrategy"),
            credentials_arn=p.get("CredentialsArn"),
            description=p.get("Description"),
            integration_method=p.get("IntegrationMethod"),
            integration_subtype=p.get("IntegrationSubtype"),
            integration_type=p["IntegrationType"],
            integration_uri=p.get("IntegrationUri"),
            passthrough_behavior=p.get("PassthroughBehavior"),
            payload_format_version=p.get("PayloadFormatVersion"),
            request_parameters=p.get("RequestParameters"),
            request_templates=p.get("RequestTemplates"),
            response_parameters=p.get("ResponseParameters"),
            template_selection_expression=p.get("TemplateSelectionExpression"),
            timeout_in_millis=p.get("TimeoutInMillis"),
            tls_config=p.get("TlsConfig"),
        )
        self = cls(name, properties, account, region)
        self.physical_id = integration.id
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the API is gone already
            backend(self.account, self.region).delete_integration(self.properties["ApiId"], self.physical_id)

    def attributes(self) -> dict[str, Any]:
        return {"IntegrationId": self.physical_id}


@register
class Route(EmulatedResource):
    type_name = "AWS::ApiGatewayV2::Route"
    attribute_names = ("RouteId",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Route:
        p = properties
        route = backend(account, region).create_route(
            api_id=p["ApiId"],
            api_key_required=p.get("ApiKeyRequired", False),
            authorization_scopes=p.get("AuthorizationScopes") or [],
            authorization_type=p.get("AuthorizationType", "NONE"),
            authorizer_id=p.get("AuthorizerId"),
            model_selection_expression=p.get("ModelSelectionExpression"),
            operation_name=p.get("OperationName"),
            request_models=p.get("RequestModels"),
            request_parameters=p.get("RequestParameters"),
            route_key=p["RouteKey"],
            route_response_selection_expression=p.get("RouteResponseSelectionExpression"),
            target=p.get("Target"),
        )
        self = cls(name, properties, account, region)
        self.physical_id = route.route_id
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the API is gone already
            backend(self.account, self.region).delete_route(self.properties["ApiId"], self.physical_id)

    def attributes(self) -> dict[str, Any]:
        return {"RouteId": self.physical_id}


@register
class Stage(EmulatedResource):
    type_name = "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Stage:
        p = properties
        config = {
            "stageName": p["StageName"],
            "autoDeploy": p.get("AutoDeploy"),
            "description": p.get("Description"),
            "stageVariables": p.get("StageVariables") or {},
            "accessLogSettings": p.get("AccessLogSettings"),
            "tags": tags_dict(p.get("Tags")),
        }
        backend(account, region).create_stage(p["ApiId"], config)
        self = cls(p["StageName"], properties, account, region)
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the API is gone already
            backend(self.account, self.region).delete_stage(self.properties["ApiId"], self.name)
