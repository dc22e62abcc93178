"""HTTPS fronts with IAM (SigV4) auth for the targets that have no URL of their own.

- SageMaker: an API Gateway REST API whose AWS integration calls the SageMaker runtime's InvokeEndpoint with a
  role that may invoke this one endpoint. (HTTP APIs cannot integrate with SageMaker directly.) Every POST
  (`/invocations`, `/v1/models/...:predict`, `/v2/models/.../infer`) reaches the container's `/invocations`,
  which accepts both protocols; bodies pass through byte for byte (`*/*` is a binary media type).
- ECS: an API Gateway HTTP API whose `$default` route goes through a VPC link to the service's internal ALB.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from constructs import Construct

from .monitoring import retained_log_group
from .nag import acknowledge

STAGE_NAME = "live"
# SageMaker runtime status -> what the front answers. Patterns are Java regexes on the integration's status and
# must not overlap; 503 (no capacity: the endpoint is scaling out from zero) says when to retry.
_SAGEMAKER_STATUS = (
    ("424", "424"),  # ModelError: the container answered an error; the body carries its message
    ("429", "429"),
    ("4(?!24|29)\\d{2}", "400"),
    ("503", "503"),
    ("5(?!03)\\d{2}", "502"),
)
RETRY_AFTER_SECONDS = 60
# An inference component at zero copies makes InvokeEndpoint answer 400 ValidationError "Inference Component has no
# capacity to process this request. ..." (not 503). A status pattern cannot see the body, so the 4xx response's mapping
# template does: the binary body (every type is binary here) is converted to base64 text, decoded, and when it is that
# message the status is overridden to 503 with Retry-After (API Gateway's `$context.responseOverride`). The emulator
# evaluates this template too (mlfn.cli.local.rest_front).
NO_CAPACITY_MESSAGE = "Inference Component has no capacity to process this request"
NO_CAPACITY_TEMPLATE = "\n".join([
    "#set($body = $util.base64Decode($input.body))",
    f'#if($body.contains("{NO_CAPACITY_MESSAGE}"))',
    "#set($context.responseOverride.status = 503)",
    f'#set($context.responseOverride.header.Retry-After = "{RETRY_AFTER_SECONDS}")',
    "#end",
    "$body",
])
# API Gateway picks an integration response's template by the request's Accept type, application/json when Accept is
# absent (and converts the payload by that type: "Content type conversions in API Gateway"). What it picks for an
# Accept matching no key AWS does not document (LocalStack, validated against AWS, falls back to application/json),
# so the template is registered under every type a caller asks for: mlfn invoke's application/json, the container's
# other answers (text/csv, application/x-npy), raw text and bytes. Without a template a 4xx at zero copies would reach
# the caller as base64 text (CONVERT_TO_TEXT) with status 400. `*/*` is not a key: a wildcard key is not documented.
NO_CAPACITY_TEMPLATE_TYPES = ("application/json", "text/csv", "application/x-npy", "text/plain",
                              "application/octet-stream")


class SageMakerRestFront(Construct):
    """`POST <url>invocations` (and any other POST path) -> InvokeEndpoint, signed with SigV4 by the caller."""

    def __init__(self, scope: Construct, id: str, *, endpoint_name: str, endpoint_arn: str,
                 inference_component: str | None, description: str) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(self, "InvokeRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                             description=f"{description}: API Gateway may invoke this endpoint only")
        self.role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[endpoint_arn]))

        self.api = apigw.RestApi(
            self, "Api",
            description=description,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=["*/*"],
            cloud_watch_role=False,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=apigw.StageOptions(stage_name=STAGE_NAME, metrics_enabled=True),
        )
        self.api.node.try_remove_child("Endpoint")  # the stack's InvokeUrl output is the one URL to give out
        validator = self.api.add_request_validator("Validator", validate_request_parameters=True,
                                                   validate_request_body=True)
        headers = {"integration.request.header.Content-Type": "method.request.header.Content-Type",
                   "integration.request.header.Accept": "method.request.header.Accept"}
        if inference_component:
            headers["integration.request.header.X-Amzn-SageMaker-Inference-Component"] = f"'{inference_component}'"
        content_type = {"method.response.header.Content-Type": "integration.response.header.Content-Type"}
        responses = [apigw.IntegrationResponse(status_code="200", response_parameters=content_type)]
        for pattern, status in _SAGEMAKER_STATUS:
            params = dict(content_type)
            if status == "503":
                params["method.response.header.Retry-After"] = f"'{RETRY_AFTER_SECONDS}'"
            if status == "400" and inference_component:  # zero copies: 400 ValidationError -> 503 (see above)
                responses.append(apigw.IntegrationResponse(
                    selection_pattern=pattern, status_code=status, response_parameters=params,
                    content_handling=apigw.ContentHandling.CONVERT_TO_TEXT,
                    response_templates=dict.fromkeys(NO_CAPACITY_TEMPLATE_TYPES, NO_CAPACITY_TEMPLATE)))
                continue
            responses.append(apigw.IntegrationResponse(selection_pattern=pattern, status_code=status,
                                                       response_parameters=params))
        integration = apigw.AwsIntegration(
            service="runtime.sagemaker",
            path=f"endpoints/{endpoint_name}/invocations",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=self.role,
                passthrough_behavior=apigw.PassthroughBehavior.WHEN_NO_MATCH,
                request_parameters=headers,
                integration_responses=responses,
                timeout=cdk.Duration.seconds(29),
            ),
        )
        method_responses = [
            apigw.MethodResponse(status_code=status, response_parameters={
                "method.response.header.Content-Type": True,
                **({"method.response.header.Retry-After": True} if status in ("400", "503") else {}),
            })
            for status in ["200", *(s for _, s in _SAGEMAKER_STATUS)]
        ]
        method_options: dict[str, Any] = {
            "request_parameters": {"method.request.header.Content-Type": False, "method.request.header.Accept": False},
            "method_responses": method_responses,
            "request_validator": validator,
        }
        self.api.root.add_resource("invocations").add_method("POST", integration, **method_options)
        self.api.root.add_resource("{proxy+}").add_method("POST", integration, **method_options)
        self.url = self.api.url
        acknowledge(self, {
            "APIG1": "REST API access logs need the account-wide API Gateway CloudWatch role, which one model's stack "
                     "must not own; SageMaker's own invocation metrics and logs cover each request.",
            "APIG6": "Execution logging needs the same account-wide role (see APIG1).",
            "APIG3": "Every method requires SigV4 (AWS_IAM); attach a WAF web ACL in your account if policy asks.",
            "COG4": "Callers authenticate with IAM (SigV4), not Cognito user pools.",
        })

    def invoker_statements(self) -> list[iam.PolicyStatement]:
        """A caller needs `execute-api:Invoke` on the API's POST methods of stage `live` (any path)."""
        arn = self.api.arn_for_execute_api("POST", "/*", STAGE_NAME)
        return [iam.PolicyStatement(sid="InvokeModelApi", actions=["execute-api:Invoke"], resources=[arn])]


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """Access-log settings of an HTTP API stage (a jsii interface, so a small class rather than a struct)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, format: apigw.AccessLogFormat) -> None:
        self._destination, self._format = destination, format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class AlbHttpFront(Construct):
    """An HTTP API (`$default` route, AWS_IAM) -> VPC link -> an internal ALB listener."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, listener: elbv2.IApplicationListener,
                 alb_security_group: ec2.ISecurityGroup, log_retention_days: int, description: str) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(self, "VpcLinkSg", vpc=vpc, allow_all_outbound=False,
                                                description=f"{description}: API Gateway VPC link to the ALB")
        self.security_group.add_egress_rule(alb_security_group, ec2.Port.tcp(80), "VPC link to the ALB listener")
        alb_security_group.add_ingress_rule(self.security_group, ec2.Port.tcp(80), "from the API's VPC link")
        self.vpc_link = apigwv2.VpcLink(self, "VpcLink", vpc=vpc, security_groups=[self.security_group],
                                        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC))
        self.api = apigwv2.HttpApi(
            self, "Api",
            description=description,
            default_integration=integrations.HttpAlbIntegration("Alb", listener, vpc_link=self.vpc_link),
            default_authorizer=authorizers.HttpIamAuthorizer(),
            create_default_stage=False,
        )
        self.access_logs = retained_log_group(self, "AccessLogs", log_retention_days)
        self.stage = apigwv2.HttpStage(
            self, "Stage", http_api=self.api, stage_name="$default", auto_deploy=True,
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
            ),
        )
        self.url = self.stage.url

    def invoker_statements(self) -> list[iam.PolicyStatement]:
        """A caller needs `execute-api:Invoke` on the API's `$default` stage (any method, any path)."""
        arn = self.api.arn_for_execute_api("*", "/*", "$default")
        return [iam.PolicyStatement(sid="InvokeModelApi", actions=["execute-api:Invoke"], resources=[arn])]
