"""Safe rollouts (`[rollout]`): the alarms that stop a rollout, and the Lambda traffic shift that AWS runs.

- `rollout_alarms`: one-minute alarms on the NEW traffic's errors (a rate as metric math, or a count), its p99
  latency, and each `[[rollout.metrics]]` entry. Every target wires them to its own rollback.
- `LambdaRollout`: a CodeDeploy deployment group on the `live` alias. A stack update that publishes a new version
  does not move the alias itself: CloudFormation hands the alias update to CodeDeploy (UpdatePolicy
  `CodeDeployLambdaAliasUpdate`), which shifts `AdditionalVersionWeights` by the deployment configuration
  (predefined `LambdaCanary10Percent5Minutes`-style names where one matches, else a custom `TimeBasedCanary` /
  `TimeBasedLinear` config) and rolls back when an alarm goes to ALARM. The shift runs in AWS: the deploying
  laptop may close. Before any traffic moves, a pre-traffic hook function calls the new version with the
  model's `example.json` (or `GET /ping`) and reports the result to CodeDeploy.
- `EcsTrafficShift`, `ecs_deployment_options`, `requests_per_task_tracking`: ECS's native LINEAR/CANARY
  deployments (alternate target group, production listener rule, infrastructure role), and the scaling metric that
  stays right whichever target group serves after a deployment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlfn.runtime.metrics.emf import NAMESPACE as EMF_NAMESPACE
from mlfn.runtime.settings import RolloutSettings

from .monitoring import retained_log_group, sum_metric
from .nag import acknowledge

ALARM_PERIOD = cdk.Duration.minutes(1)
EXAMPLE_FILE = "example.json"
EXAMPLE_LIMIT = 3072
# The AWS managed policy of the ECS infrastructure role for load balancers.
INFRASTRUCTURE_POLICY = "AmazonECSInfrastructureRolePolicyForLoadBalancers"
_PREDEFINED = codedeploy.LambdaDeploymentConfig
# CodeDeploy's predefined Lambda configurations, as CDK names them: (strategy, percent, minutes) -> config.
PREDEFINED: dict[tuple[str, int, int], codedeploy.ILambdaDeploymentConfig] = {
    ("canary", 10, 5): _PREDEFINED.CANARY_10_PERCENT_5_MINUTES,
    ("canary", 10, 10): _PREDEFINED.CANARY_10_PERCENT_10_MINUTES,
    ("canary", 10, 15): _PREDEFINED.CANARY_10_PERCENT_15_MINUTES,
    ("canary", 10, 30): _PREDEFINED.CANARY_10_PERCENT_30_MINUTES,
    ("linear", 10, 1): _PREDEFINED.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    ("linear", 10, 2): _PREDEFINED.LINEAR_10_PERCENT_EVERY_2_MINUTES,
    ("linear", 10, 3): _PREDEFINED.LINEAR_10_PERCENT_EVERY_3_MINUTES,
    ("linear", 10, 10): _PREDEFINED.LINEAR_10_PERCENT_EVERY_10_MINUTES,
}

_HOOK_CODE = '''
import base64, json, os, boto3
def handler(event, context):
    status = "Failed"
    try:
        body = os.environ.get("EXAMPLE", "")
        path = os.environ["EXAMPLE_PATH"] if body else "/ping"
        request = {"version": "2.0", "rawPath": path, "rawQueryString": "", "isBase64Encoded": False,
                   "headers": {"content-type": "application/json"}, "body": body,
                   "requestContext": {"http": {"method": "POST" if body else "GET", "path": path}}}
        answer = boto3.client("lambda").invoke(FunctionName=os.environ["TARGET_VERSION"],
                                               Payload=json.dumps(request).encode())
        result = json.loads(answer["Payload"].read() or b"{}")
        ok = "FunctionError" not in answer and 200 <= int(result.get("statusCode", 500)) < 300
        status = "Succeeded" if ok else "Failed"
        print(json.dumps({"target": os.environ["TARGET_VERSION"], "status": status,
                          "statusCode": result.get("statusCode")}))
    finally:
        boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"], lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status)
'''


def latency_threshold(rollout: RolloutSettings, default: float, units_per_ms: float) -> float:
    """`p99_ms` in the latency metric's unit, or the target's `default` (in that unit) when it is 0."""
    return rollout.p99_ms * units_per_ms if rollout.p99_ms else default


_OPERATORS = {
    "GreaterThanThreshold": cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
    "GreaterThanOrEqualToThreshold": cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanThreshold": cw.ComparisonOperator.LESS_THAN_THRESHOLD,
    "LessThanOrEqualToThreshold": cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}


def rollout_alarms(scope: Construct, rollout: RolloutSettings, *, errors: cw.Metric, requests: cw.Metric,
                   latency_p99: cw.Metric, latency_threshold: float,
                   more_errors: tuple[cw.Metric, ...] = (),
                   rates: dict[str, tuple[cw.Metric, cw.Metric]] | None = None) -> list[cw.Alarm]:
    """The one-minute alarms that roll a rollout back: the 5xx rate (`100 * errors / requests`, as "Using metric
    math" computes an error rate) and/or count, the p99 latency, each `[[rollout.metrics]]` entry; with a count,
    also one count alarm per metric in `more_errors` (Lambda's function errors, which are not 5xx answers).
    `rates` (name -> (errors, requests)) replaces the one rate alarm by one per entry (ECS: one per target group,
    so the new revision's rate is not diluted by the old one's traffic)."""
    periods = rollout.evaluation_periods
    common: dict[str, Any] = {"evaluation_periods": periods, "datapoints_to_alarm": periods,
                              "treat_missing_data": cw.TreatMissingData.NOT_BREACHING}
    above = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
    at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    per_minute = {"period": ALARM_PERIOD, "statistic": "Sum"}
    alarms = []
    if rollout.error_rate_percent:
        for name, (errs, reqs) in (rates or {"": (errors, requests)}).items():
            rate = cw.MathExpression(expression="100 * errors / requests", period=ALARM_PERIOD,
                                     using_metrics={"errors": errs.with_(**per_minute),
                                                    "requests": reqs.with_(**per_minute)})
            alarms.append(cw.Alarm(scope, f"RolloutErrorRate{name}", metric=rate,
                                   threshold=rollout.error_rate_percent, comparison_operator=above, **common,
                                   alarm_description=f"rollout: more than {rollout.error_rate_percent:g}% of "
                                                     f"calls{' to ' + name if name else ''} answered 5xx in a minute"))
    if rollout.error_count:
        for i, metric in enumerate((errors, *more_errors)):
            alarms.append(cw.Alarm(scope, f"RolloutErrors{i or ''}", metric=metric.with_(**per_minute),
                                   threshold=rollout.error_count, comparison_operator=at_least, **common,
                                   alarm_description=f"rollout: {rollout.error_count} or more "
                                                     f"{metric.metric_name} in a minute"))
    alarms.append(cw.Alarm(scope, "RolloutLatencyP99",
                           metric=latency_p99.with_(period=ALARM_PERIOD, statistic="p99"),
                           threshold=latency_threshold, comparison_operator=above, **common,
                           alarm_description=f"rollout: p99 latency above {latency_threshold:g} in a minute"))
    for i, m in enumerate(rollout.metrics):
        dims = dict(d.split("=", 1) for d in m.dimensions)
        metric = cw.Metric(namespace=m.namespace, metric_name=m.metric, dimensions_map=dims or None,
                           statistic=m.statistic, period=ALARM_PERIOD)
        alarms.append(cw.Alarm(scope, f"RolloutMetric{i}", metric=metric, threshold=m.threshold,
                               comparison_operator=_OPERATORS[m.comparison], **common,
                               alarm_description=f"rollout: {m.namespace}/{m.metric} {m.statistic} "
                                                 f"{m.comparison} {m.threshold:g}"))
    return alarms


def lambda_deployment_config(scope: Construct, rollout: RolloutSettings) -> codedeploy.ILambdaDeploymentConfig:
    """The predefined CodeDeploy configuration when one matches `[rollout]`, else a custom one."""
    predefined = PREDEFINED.get((rollout.strategy, rollout.percent, rollout.interval_minutes))
    if predefined is not None:
        return predefined
    interval = cdk.Duration.minutes(rollout.interval_minutes)
    routing: codedeploy.TrafficRouting = (
        codedeploy.TimeBasedCanaryTrafficRouting(interval=interval, percentage=rollout.percent)
        if rollout.strategy == "canary"
        else codedeploy.TimeBasedLinearTrafficRouting(interval=interval, percentage=rollout.percent))
    return codedeploy.LambdaDeploymentConfig(scope, "Config", traffic_routing=routing)


def inference_component_deployment(rollout: RolloutSettings, alarms: list[cw.Alarm]
                                   ) -> sagemaker.CfnInferenceComponent.InferenceComponentDeploymentConfigProperty:
    """A SageMaker inference component's update policy. Inference components offer a rolling update only
    ("InferenceComponentRollingUpdatePolicy"): batches of copies, each baked `WaitIntervalInSeconds` (at most
    3600) while SageMaker watches the alarms, and rolled back when one fires. A batch is 5% to 50% of the copy
    count, so `percent` is clamped into that range; canary and linear both become batches of `percent`."""
    ic = sagemaker.CfnInferenceComponent
    return ic.InferenceComponentDeploymentConfigProperty(
        rolling_update_policy=ic.InferenceComponentRollingUpdatePolicyProperty(
            maximum_batch_size=ic.InferenceComponentCapacitySizeProperty(
                type="CAPACITY_PERCENT", value=min(50, max(5, rollout.percent))),
            wait_interval_in_seconds=min(3600, rollout.interval_minutes * 60),
        ),
        auto_rollback_configuration=ic.AutoRollbackConfigurationProperty(
            alarms=[ic.AlarmProperty(alarm_name=a.alarm_name) for a in alarms]),
    )


def example_request(model_dir: Path, name: str) -> tuple[str, str]:
    """(path, body) of the pre-traffic check: `example.json` to the KServe v1 route, or ("", "") for `/ping`."""
    example = model_dir / EXAMPLE_FILE
    if not example.is_file():
        return "", ""
    body = json.dumps(json.loads(example.read_text()), separators=(",", ":"))
    # It travels in an environment variable (all of a function's variables: at most 4 KB); a larger one: /ping.
    return ("", "") if len(body) > EXAMPLE_LIMIT else (f"/v1/models/{name}:predict", body)


class LambdaRollout(Construct):
    """CodeDeploy traffic shifting with auto-rollback and a pre-traffic check on a function's alias."""

    def __init__(self, scope: Construct, id: str, *, alias: lambda_.Alias, version: lambda_.IVersion,
                 rollout: RolloutSettings, model_dir: Path, model_name: str, timeout_s: float,
                 log_retention_days: int) -> None:
        super().__init__(scope, id)
        model = {"Model": model_name}  # the runtime's EMF metrics: 5xx answers are not Lambda function errors
        self.alarms = rollout_alarms(
            self, rollout, errors=sum_metric(EMF_NAMESPACE, "ServerErrors", model),
            requests=sum_metric(EMF_NAMESPACE, "Requests", model), latency_p99=alias.metric_duration(),
            latency_threshold=latency_threshold(rollout, timeout_s * 1000 * 0.8, 1),
            more_errors=(alias.metric_errors(),))
        path, body = example_request(model_dir, model_name)
        # Its own role and log group, as the model's function has: it may write its logs, invoke the new version
        # and report to CodeDeploy, nothing else.
        log_group = retained_log_group(self, "PreTrafficLogs", log_retention_days)
        role = iam.Role(self, "PreTrafficRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"mlfn {model_name}: pre-traffic check (invokes the new version once)")
        log_group.grant_write(role)
        self.pre_traffic = lambda_.Function(
            self, "PreTraffic", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler", role=role,
            log_group=log_group,
            code=lambda_.Code.from_inline(_HOOK_CODE), timeout=cdk.Duration.seconds(min(900, timeout_s + 30)),
            description=f"mlfn {model_name}: pre-traffic check of a new version (its example request)",
            environment={"TARGET_VERSION": version.function_arn, "EXAMPLE_PATH": path, "EXAMPLE": body},
        )
        version.grant_invoke(self.pre_traffic)
        self.group = codedeploy.LambdaDeploymentGroup(
            self, "DeploymentGroup", alias=alias, role=self._codedeploy_role(alias),
            deployment_config=lambda_deployment_config(self, rollout),
            alarms=self.alarms, pre_hook=self.pre_traffic,
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True,
                                                        deployment_in_alarm=True),
        )
        # CDK attaches AWSCodeDeployRoleForLambdaLimited to the role; the inline policy above holds the same
        # actions scoped to this alias and its alarms (its S3 and CodeDeployHook_* grants are not needed here).
        role_resource = self.group.role.node.default_child
        assert isinstance(role_resource, iam.CfnRole)
        role_resource.add_property_deletion_override("ManagedPolicyArns")
        hook_id = cdk.Stack.of(self).get_logical_id(self.pre_traffic.node.default_child)  # type: ignore[arg-type]
        acknowledge(self, {
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]":
                "Removed from the template below (property deletion); nag reads the construct before that.",
            f"IAM5[Resource::<{hook_id}.Arn>:*]":
                "CodeDeploy may invoke the pre-traffic hook by any of its qualifiers; only that function.",
        })

    def _codedeploy_role(self, alias: lambda_.Alias) -> iam.Role:
        """CodeDeploy's service role: what AWSCodeDeployRoleForLambdaLimited allows (DescribeAlarms, Get/UpdateAlias,
        GetProvisionedConcurrencyConfig), on this alias and its rollout alarms only."""
        role = iam.Role(self, "CodeDeployRole", assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
                        description="mlfn: CodeDeploy shifts the live alias and watches the rollout alarms")
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"],
                                               resources=[a.alarm_arn for a in self.alarms]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig"],
            resources=[alias.version.lambda_.function_arn, alias.function_arn]))
        return role


class EcsTrafficShift(Construct):
    """What ECS's own LINEAR/CANARY deployments need on an ALB (Developer Guide "Application Load Balancer resources
    for blue/green, linear, and canary deployments"): a second ("alternate") target group, a production listener
    RULE (not the listener's default action) forwarding to both groups with weights ECS rewrites at each step, and
    the infrastructure role ECS assumes to call Elastic Load Balancing (trust `ecs.amazonaws.com`, the AWS managed
    policy AmazonECSInfrastructureRolePolicyForLoadBalancers, as "Amazon ECS infrastructure IAM role for load
    balancers" creates it).

    The listener's default action stays a plain forward to the primary group: ECS fails a deployment whose
    listener mixes forward and non-forward actions (fixed-response, redirect, authenticate), and the rule, which
    matches every path, answers every request before the default action would.
    """

    PRIORITY = 1

    def __init__(self, scope: Construct, id: str, *, listener: elbv2.ApplicationListener,
                 primary: elbv2.ApplicationTargetGroup, alternate: elbv2.ApplicationTargetGroup,
                 description: str) -> None:
        super().__init__(scope, id)
        self.primary, self.alternate = primary, alternate
        self.rule = elbv2.ApplicationListenerRule(
            self, "ProductionRule", listener=listener, priority=self.PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns(["/*"])],
            action=elbv2.ListenerAction.weighted_forward([
                elbv2.WeightedTargetGroup(target_group=primary, weight=100),
                elbv2.WeightedTargetGroup(target_group=alternate, weight=0)]))
        self.role = iam.Role(
            self, "InfrastructureRole", assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
            description=f"{description}: ECS shifts the ALB rule's weights and registers tasks during a rollout",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(INFRASTRUCTURE_POLICY)])
        acknowledge(self.role, {f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{INFRASTRUCTURE_POLICY}]":
                                "AWS's policy for the ECS infrastructure role for load balancers, which AWS keeps "
                                "in step with the ELB calls ECS makes (edited since release); a copy would go stale."})

    def alternate_target(self) -> ecs.AlternateTarget:
        return ecs.AlternateTarget(
            "Alternate", alternate_target_group=self.alternate, role=self.role,
            production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(self.rule))


def ecs_deployment_options(rollout: RolloutSettings) -> dict[str, Any]:
    """The service's `deploymentStrategy` LINEAR or CANARY with `[rollout]` step and bake (CDK's native props):
    `percent` is LINEAR's StepPercent / CANARY's CanaryPercent, `interval_minutes` the step bake time and the
    deployment's BakeTimeInMinutes (blue and green both run that long at 100%, the alarms still watching). No
    circuit breaker: it applies to rolling updates only; the deployment alarms roll these back."""
    bake = cdk.Duration.minutes(rollout.interval_minutes)
    shift = ecs.TrafficShiftConfig(step_percent=rollout.percent, step_bake_time=bake)
    if rollout.strategy == "canary":
        return {"deployment_strategy": ecs.DeploymentStrategy.CANARY, "canary_configuration": shift, "bake_time": bake}
    return {"deployment_strategy": ecs.DeploymentStrategy.LINEAR, "linear_configuration": shift, "bake_time": bake}


def requests_per_task_tracking(scope: Construct, id: str, target: appscaling.ScalableTarget, *,
                               load_balancer: str, cluster: str, service: str, target_value: float
                               ) -> appscaling.CfnScalingPolicy:
    """Target tracking on `RequestCount` of the whole ALB divided by the service's `RunningTaskCount` (Container
    Insights), as Application Auto Scaling's metric-math target tracking allows. ALBRequestCountPerTarget names ONE
    target group, and ECS registers a deployment's new revision in the other one: once production has moved there,
    the predefined metric would read the idle group (no data) and never scale out."""
    policy = appscaling.CfnScalingPolicy
    dims = [policy.TargetTrackingMetricDimensionProperty(name="LoadBalancer", value=load_balancer)]
    tasks = [policy.TargetTrackingMetricDimensionProperty(name="ClusterName", value=cluster),
             policy.TargetTrackingMetricDimensionProperty(name="ServiceName", value=service)]
    queries = [
        policy.TargetTrackingMetricDataQueryProperty(id="requests", return_data=False, metric_stat=(
            policy.TargetTrackingMetricStatProperty(stat="Sum", metric=policy.TargetTrackingMetricProperty(
                namespace="AWS/ApplicationELB", metric_name="RequestCount", dimensions=dims)))),
        policy.TargetTrackingMetricDataQueryProperty(id="tasks", return_data=False, metric_stat=(
            policy.TargetTrackingMetricStatProperty(stat="Average", metric=policy.TargetTrackingMetricProperty(
                namespace="ECS/ContainerInsights", metric_name="RunningTaskCount", dimensions=tasks)))),
        policy.TargetTrackingMetricDataQueryProperty(id="per_task", expression="requests / tasks",
                                                     label="ALB requests per running task", return_data=True),
    ]
    return policy(scope, id, policy_name=cdk.Names.unique_id(scope) + id, policy_type="TargetTrackingScaling",
                  scaling_target_id=target.scalable_target_id,
                  target_tracking_scaling_policy_configuration=policy.TargetTrackingScalingPolicyConfigurationProperty(
                      target_value=target_value,
                      customized_metric_specification=policy.CustomizedMetricSpecificationProperty(metrics=queries)))
