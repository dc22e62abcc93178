"""`mlfn batch --local` on an ECS-target model (a container target): its stack's batch engine is a Batch Transform
job of a SageMaker model made from the ECS service's own image; `mlfn batch` runs one execution of that state
machine and the emulator runs the job on that image: every output line as onnxruntime answers, the job Completed on
the [batch] GPU instance type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from .deployed import deployed_iris

pytestmark = pytest.mark.slow  # one ECS stack, synthesized and deployed to the emulator
BUCKET = "ecs-batch-data"
RECORDS = 90


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Any]]:
    with deployed_iris(tmp_path_factory.mktemp("ecs-batch"), "ecsiris",
                       f'\n[batch]\nstate_machine = true\nbucket = "{BUCKET}"\ninstance_type = "ml.g5.xlarge"\n'
                       "records_per_call = 16\n", target="ecs", timeout_s=400) as found:
        yield found


def test_mlfn_batch_on_an_ecs_model_is_a_transform_job_of_its_own_image(deployed: tuple[Any, Path, Any]) -> None:
    cli, model, client = deployed
    s3, sagemaker, cfn = client("s3"), client("sagemaker"), client("cloudformation")
    s3.create_bucket(Bucket=BUCKET)
    rows = np.random.default_rng(5).uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(RECORDS, 4)).round(2).tolist()
    s3.put_object(Bucket=BUCKET, Key="rows/part-1.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode())

    summary = cli("batch", "ecsiris", "--input", f"s3://{BUCKET}/rows/", "--output", f"s3://{BUCKET}/scores/",
                  "--local", "--json", timeout=300).json()
    assert summary["status"] == "SUCCEEDED" and summary["TransformJobStatus"] == "Completed", summary

    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="mlfn-ecsiris-dev")[
        "Stacks"][0]["Outputs"]}
    job = sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformJobStatus"] == "Completed" and job["ModelName"] == outputs["BatchModelName"]
    assert job["TransformResources"]["InstanceType"] == "ml.g5.xlarge"
    assert job["TransformInput"]["SplitType"] == "Line" and job["BatchStrategy"] == "MultiRecord"
    image = sagemaker.describe_model(ModelName=job["ModelName"])["PrimaryContainer"]["Image"]
    resources = cfn.describe_stack_resources(StackName="mlfn-ecsiris-dev")["StackResources"]
    (task,) = [r for r in resources if r["ResourceType"] == "AWS::ECS::TaskDefinition"]
    ecs = client("ecs").describe_task_definition(taskDefinition=task["PhysicalResourceId"])["taskDefinition"]
    assert image == ecs["containerDefinitions"][0]["image"]  # the ECS service's own image

    lines = s3.get_object(Bucket=BUCKET, Key="scores/part-1.jsonl.out")["Body"].read().decode().splitlines()
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(["output_label"], {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})[0]
    assert [json.loads(line)["output_label"] for line in lines] == want.tolist()
