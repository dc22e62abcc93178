"""The Lambda target's template: function, alias, provisioned-concurrency autoscaling, Function URL, logs."""

from __future__ import annotations

from aws_cdk.assertions import Match

from .conftest import IMAGE_URI, Synthesized


def test_function_url_defaults_to_iam_auth(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-default")
    t.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM", "Qualifier": "live"})
    t.resource_count_is("AWS::Lambda::Permission", 0)  # nobody is granted a public invoke
    assert synthesized.templates["lam-default"]["Outputs"]["AuthType"]["Value"] == "AWS_IAM"


def test_function_url_is_public_only_when_asked(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-public")
    t.has_resource_properties("AWS::Lambda::Url", {
        "AuthType": "NONE",
        "Cors": {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"]},
    })
    t.has_resource_properties("AWS::Lambda::Permission", {"Action": "lambda:InvokeFunctionUrl", "Principal": "*",
                                                          "FunctionUrlAuthType": "NONE"})
    # Since October 2025 a public URL also needs lambda:InvokeFunction, limited to calls through the URL.
    t.has_resource_properties("AWS::Lambda::Permission", {"Action": "lambda:InvokeFunction", "Principal": "*",
                                                          "InvokedViaFunctionUrl": True})
    assert synthesized.templates["lam-public"]["Outputs"]["AuthType"]["Value"] == "NONE"


def test_function_takes_its_settings(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-public")
    t.has_resource_properties("AWS::Lambda::Function", {
        "PackageType": "Image",
        "MemorySize": 3008,
        "Timeout": 20,
        "EphemeralStorage": {"Size": 1024},
        "Architectures": ["arm64"],
        "ReservedConcurrentExecutions": 10,
        "Environment": {"Variables": {"MLFN_MODEL_DIR": "/opt/mlfn/model"}},
        "LoggingConfig": {"LogGroup": Match.any_value()},
    })
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})


def test_default_function_is_unreserved_with_30_day_logs(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-default")
    t.has_resource_properties("AWS::Lambda::Function", {"MemorySize": 2048, "Architectures": ["x86_64"],
                                                        "ReservedConcurrentExecutions": Match.absent()})
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_alias_live_on_current_version(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-default")
    t.has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live",
        "FunctionVersion": {"Fn::GetAtt": [Match.string_like_regexp("CurrentVersion"), "Version"]},
        "ProvisionedConcurrencyConfig": Match.absent(),
    })


def test_no_scalable_target_without_provisioned_concurrency(synthesized: Synthesized) -> None:
    synthesized.template("lam-default").resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)


def test_provisioned_concurrency_autoscaling_follows_settings(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-public")
    t.has_resource_properties("AWS::Lambda::Alias", {"ProvisionedConcurrencyConfig":
                                                     {"ProvisionedConcurrentExecutions": 1}})
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ScalableDimension": "lambda:function:ProvisionedConcurrency",
        "MinCapacity": 1,
        "MaxCapacity": 4,
        "ScheduledActions": [{
            "ScheduledActionName": "workday",
            "Schedule": "cron(0 8 ? * MON-FRI *)",
            "ScalableTargetAction": {"MinCapacity": 2, "MaxCapacity": 4},
        }],
    })
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 0.6,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"},
        },
    })


def test_role_writes_only_its_own_logs(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-default")
    t.has_resource_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})
    t.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": [{
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [Match.string_like_regexp("Logs"), "Arn"]},
    }]}})


def test_alarms_and_dashboard(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-default")
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    for metric, extra in (("Errors", {}), ("Throttles", {}), ("Duration", {"ExtendedStatistic": "p99",
                                                                           "Threshold": 24000})):
        t.has_resource_properties("AWS::CloudWatch::Alarm", {"Namespace": "AWS/Lambda", "MetricName": metric,
                                                             **extra})


def test_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.templates["lam-default"]["Outputs"]
    assert set(outputs) == {"InvokeUrl", "AuthType", "Target", "FunctionName", "AliasName", "InvokerPolicy"}
    assert outputs["InvokeUrl"]["Value"] == {"Fn::GetAtt": [outputs["InvokeUrl"]["Value"]["Fn::GetAtt"][0],
                                                            "FunctionUrl"]}
    assert outputs["Target"]["Value"] == "lambda"
    assert outputs["AliasName"]["Value"] == "live"


def test_image_uri_replaces_the_asset_and_the_bootstrap_rule(synthesized: Synthesized) -> None:
    with_uri = synthesized.templates["lam-default+uri"]
    assert "Rules" not in with_uri and "BootstrapVersion" not in with_uri.get("Parameters", {})
    fn = next(r for r in with_uri["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    assert "sha256:" + "ab" * 32 in str(fn["Properties"]["Code"]["ImageUri"])
    assert "mlfn/iris@sha256" in str(fn["Properties"]["Code"]["ImageUri"])
    asset = synthesized.templates["lam-default"]
    fn = next(r for r in asset["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    assert "container-assets" in str(fn["Properties"]["Code"]["ImageUri"])
    assert IMAGE_URI not in str(asset)


def test_snapstart_on_published_versions_with_the_alias_on_one(synthesized: Synthesized) -> None:
    t = synthesized.template("lam-snapstart")
    t.has_resource_properties("AWS::Lambda::Function", {"SnapStart": {"ApplyOn": "PublishedVersions"},
                                                        "EphemeralStorage": {"Size": 512}})
    t.resource_count_is("AWS::Lambda::Version", 1)
    t.has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live",
        "FunctionVersion": {"Fn::GetAtt": [Match.string_like_regexp("CurrentVersion"), "Version"]},
        "ProvisionedConcurrencyConfig": Match.absent(),
    })
    synthesized.template("lam-default").has_resource_properties(
        "AWS::Lambda::Function", {"SnapStart": Match.absent()})
