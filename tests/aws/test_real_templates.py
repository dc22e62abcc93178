"""The templates mlfn's CDK stacks really synthesize, for every target, deployed whole into the emulator through the
deploy engine: CREATE_COMPLETE, outputs resolved, no-op and changed-model redeploys, destroy.

Synthesis (jsii + node) takes a few seconds per template, so the module is marked slow; each template is
synthesized once per session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlfn.cli.aws.cloudformation import deploy, destroy

pytestmark = pytest.mark.slow
TARGETS = ("lambda", "sagemaker", "ecs")
PER_TARGET_OUTPUTS = {
    "lambda": ("FunctionName", "AliasName"),
    "sagemaker": ("EndpointName", "InferenceComponentName"),
    "ecs": ("ClusterName", "ServiceName"),
}


def image(digest_byte: str) -> str:
    return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn-iris@sha256:{digest_byte * 32}"


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, functions_dir: Path) -> dict[str, str]:
    """target (and "lambda-changed": the same model with another image) -> template body, synthesized once."""
    from mlfn.infra.synth import synth_model

    out: dict[str, str] = {}
    for key, target, digest in [*((t, t, "ab") for t in TARGETS), ("lambda-changed", "lambda", "cd")]:
        path = synth_model(functions_dir / "iris", image_uri=image(digest), stage="dev", target=target,
                           outdir=tmp_path_factory.mktemp(f"synth-{key}"))
        out[key] = path.read_text()
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_deploys_whole_and_redeploys_as_no_change(session: Any, synthesized: dict[str, str],
                                                             target: str) -> None:
    stack_name = f"mlfn-iris-real-{target}"
    failed: list[str] = []
    result = deploy(synthesized[target], stack_name, session=session,
                    on_event=lambda e: failed.append(e.logical_id) if e.failed else None)

    assert result.status == "CREATED" and failed == []
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = result.outputs
    assert outputs["Target"] == target
    assert outputs["AuthType"] in ("AWS_IAM", "NONE")
    assert urlsplit(outputs["InvokeUrl"]).scheme == "https"
    for key in PER_TARGET_OUTPUTS[target]:
        assert outputs[key], key
    if target == "lambda":
        function, alias = outputs["FunctionName"], outputs["AliasName"]
        lam = session.client("lambda")
        url = lam.get_function_url_config(FunctionName=function, Qualifier=alias)
        assert url["FunctionUrl"] == outputs["InvokeUrl"]
        assert urlsplit(outputs["InvokeUrl"]).hostname == "127.0.0.1"
        assert url["AuthType"] == outputs["AuthType"]
        assert lam.get_function(FunctionName=function)["Configuration"]["PackageType"] == "Image"
    if target == "sagemaker":
        component = session.client("sagemaker").describe_inference_component(
            InferenceComponentName=outputs["InferenceComponentName"])
        assert component["EndpointName"] == outputs["EndpointName"]
    if target == "ecs":
        services = session.client("ecs").describe_services(cluster=outputs["ClusterName"],
                                                           services=[outputs["ServiceName"]])["services"]
        assert [s["serviceName"] for s in services] == [outputs["ServiceName"]]

    again = deploy(synthesized[target], stack_name, session=session)
    assert again.status == "NO_CHANGES" and again.outputs == outputs

    assert destroy(stack_name, session=session) is True


def test_changed_model_moves_the_alias_to_a_new_version(session: Any, synthesized: dict[str, str]) -> None:
    stack_name = "mlfn-iris-real-change"
    first = deploy(synthesized["lambda"], stack_name, session=session)
    function, alias = first.outputs["FunctionName"], first.outputs["AliasName"]
    lam = session.client("lambda")
    before = lam.get_alias(FunctionName=function, Name=alias)["FunctionVersion"]

    changed = deploy(synthesized["lambda-changed"], stack_name, session=session)

    assert changed.status == "UPDATED"
    assert changed.outputs["InvokeUrl"] == first.outputs["InvokeUrl"]
    after = lam.get_alias(FunctionName=function, Name=alias)["FunctionVersion"]
    assert int(after) == int(before) + 1
    assert lam.get_function(FunctionName=function, Qualifier=after)["Code"]["ImageUri"] == image("cd")
    assert destroy(stack_name, session=session) is True


def test_serverless_sagemaker_template_deploys(session: Any, functions_dir: Path, tmp_path: Path) -> None:
    """The serverless variant's model runs without network isolation, which Serverless Inference does not support
    (the emulator refuses the endpoint config of an isolated model)."""
    import shutil

    from mlfn.infra.synth import synth_model

    model = tmp_path / "iris-serverless"
    shutil.copytree(functions_dir / "iris", model)
    toml = (model / "mlfn.toml").read_text().replace('name = "iris"', 'name = "iris-serverless"')
    (model / "mlfn.toml").write_text(f"{toml}\n[sagemaker]\nserverless = true\nserverless_memory_mb = 2048\n")
    template = synth_model(model, image_uri=image("ab"), stage="dev", target="sagemaker", outdir=tmp_path / "out")

    result = deploy(template.read_text(), "mlfn-iris-serverless-dev", session=session)

    assert result.status == "CREATED" and result.outputs["EndpointName"] == "mlfn-iris-serverless-dev"
    config = session.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=session.client("sagemaker").describe_endpoint(
            EndpointName="mlfn-iris-serverless-dev")["EndpointConfigName"])
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 2048
    destroy("mlfn-iris-serverless-dev", session=session)


def test_a_canary_rollout_template_deploys_whole_with_its_codedeploy_group(session: Any, functions_dir: Path,
                                                                          tmp_path: Path) -> None:
    """`[rollout] strategy = "canary"`: the pre-traffic hook function, the rollout alarms (a metric-math rate among
    them) and the CodeDeploy application, config and group deploy into the emulator; the outputs name the group."""
    import shutil

    from mlfn.cli.local import cfn_codedeploy, codedeploy  # noqa: F401 - registers the CodeDeploy resource types
    from mlfn.infra.synth import synth_model

    codedeploy.install()  # (the control plane's install_extensions does not call it yet: a hook line)

    model = tmp_path / "iris-canary"
    shutil.copytree(functions_dir / "iris", model)
    toml = (model / "mlfn.toml").read_text().replace('name = "iris"', 'name = "iris-canary"')
    (model / "mlfn.toml").write_text(f'{toml}\n[rollout]\nstrategy = "canary"\npercent = 20\ninterval_minutes = 2\n'
                                     "error_count = 2\n")
    template = synth_model(model, image_uri=image("ab"), stage="dev", target="lambda", outdir=tmp_path / "out")
    failed: list[str] = []
    result = deploy(template.read_text(), "mlfn-iris-canary-dev", session=session,
                    on_event=lambda e: failed.append(e.logical_id) if e.failed else None)
    assert result.status == "CREATED" and failed == []
    outputs = result.outputs
    group = session.client("codedeploy").get_deployment_group(
        applicationName=outputs["RolloutApplication"],
        deploymentGroupName=outputs["RolloutDeploymentGroup"])["deploymentGroupInfo"]
    assert group["computePlatform"] == "Lambda" and group["alarmConfiguration"]["enabled"] is True
    assert len(group["alarmConfiguration"]["alarms"]) == 4  # rate, 5xx count, function errors, p99
    assert destroy("mlfn-iris-canary-dev", session=session) is True
