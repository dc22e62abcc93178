"""Bad settings are refused before any synth, with one line naming the setting and what would work."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlfn.infra.checks import InfraError, check_stage, resolve_target
from mlfn.infra.image import EcrImage
from mlfn.runtime.errors import SpecError
from mlfn.runtime.spec import load_spec

MakeDir = Callable[[str, str], Path]


@pytest.mark.parametrize(("name", "toml", "field", "expected"), [
    ("unknown-sm", 'target = "sagemaker"\n[sagemaker]\ninstance_type = "ml.g9.huge"\n',
     "sagemaker.instance_type", "a known instance type (ml.g4dn.*"),
    ("cpu-for-gpu", 'target = "sagemaker"\ngpu = true\n[sagemaker]\ninstance_type = "ml.m5.xlarge"\n',
     "sagemaker.instance_type", "a GPU instance type"),
    ("copy-too-big", 'target = "sagemaker"\n[sagemaker]\ninstance_type = "ml.m5.large"\nmemory_per_copy_mb = 9000\n',
     "sagemaker.memory_per_copy_mb", "at most the 8192 MiB of ml.m5.large"),
    ("gpus-per-copy", 'target = "sagemaker"\n[sagemaker]\ninstance_type = "ml.g5.xlarge"\ngpus_per_copy = 2\n',
     "sagemaker.gpus_per_copy", "at most the 1 GPUs of ml.g5.xlarge"),
    ("unknown-ecs", 'target = "ecs"\n[ecs]\ninstance_type = "m5.large"\n', "ecs.instance_type",
     "a known instance type (g4dn.*"),
    ("ecs-no-gpu", 'target = "ecs"\n[ecs]\ngpus = 0\n', "ecs.gpus", "1 or more"),
    ("ecs-memory", 'target = "ecs"\n[ecs]\ninstance_type = "g4dn.xlarge"\nmemory_mb = 16384\n', "ecs.memory_mb",
     "at most the 15360 MiB left for tasks of g4dn.xlarge"),
    ("sched-max", '[lambda]\nprovisioned_max = 2\n[[lambda.schedules]]\ncron = "cron(0 8 * * ? *)"\nmax = 5\n',
     "lambda.schedules[0].max", "at most lambda.provisioned_max (2)"),
])
def test_refused_settings(make_model_dir: MakeDir, name: str, toml: str, field: str, expected: str) -> None:
    spec = load_spec(make_model_dir(name, toml))
    with pytest.raises(SpecError) as caught:
        resolve_target(spec)
    assert caught.value.field == field
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_gpu_model_refused_on_lambda_even_as_an_override(make_model_dir: MakeDir) -> None:
    spec = load_spec(make_model_dir("gpu-override", 'target = "sagemaker"\ngpu = true\n'
                                    '[sagemaker]\ninstance_type = "ml.g5.xlarge"\n'))
    resolve_target(spec)  # fine where it is
    with pytest.raises(SpecError, match="Lambda has no GPUs"):
        resolve_target(spec, "lambda")


def test_serverless_refused_for_gpu_override(make_model_dir: MakeDir) -> None:
    spec = load_spec(make_model_dir("sls-gpu", 'gpu = true\ntarget = "ecs"\n[sagemaker]\nserverless = true\n'))
    with pytest.raises(SpecError, match="serverless is CPU only"):
        resolve_target(spec, "sagemaker")


def test_model_too_large_for_a_lambda_image(make_model_dir: MakeDir) -> None:
    directory = make_model_dir("too-large", "")
    with open(directory / "weights.bin", "wb") as f:  # sparse: 9.5 GiB of size, no disk
        f.truncate(int(9.5 * 1024**3))
    try:
        with pytest.raises(SpecError, match="exceeds Lambda's 10 GiB image limit"):
            resolve_target(load_spec(directory))
        resolve_target(load_spec(directory), "sagemaker")  # the suggested target accepts it
    finally:
        os.remove(directory / "weights.bin")


def test_spec_refuses_min_above_max_and_memory_out_of_range(make_model_dir: MakeDir) -> None:
    with pytest.raises(SpecError, match=r"ecs\.min_tasks"):
        load_spec(make_model_dir("min-max", '[ecs]\nmin_tasks = 3\nmax_tasks = 2\n'))
    with pytest.raises(SpecError, match=r"lambda\.memory_mb"):
        load_spec(make_model_dir("memory", '[lambda]\nmemory_mb = 20000\n'))


def test_unknown_stage_and_target(make_model_dir: MakeDir) -> None:
    spec = load_spec(make_model_dir("stages", 'stages = ["dev", "prod"]\n'))
    check_stage(spec, "prod")
    with pytest.raises(InfraError, match="stage 'qa' is not one of stages's stages"):
        check_stage(spec, "qa")
    with pytest.raises(InfraError, match="unknown target 'k8s'"):
        resolve_target(spec, "k8s")


def test_image_uri_must_be_ecr() -> None:
    image = EcrImage.parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/model@sha256:" + "0" * 64)
    assert (image.account, image.region, image.repository) == ("123456789012", "eu-west-1", "team/model")
    assert image.reference == "sha256:" + "0" * 64
    assert EcrImage.parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/m:v1").region == "cn-north-1"
    for bad in ("docker.io/library/python:3.12", "123456789012.dkr.ecr.us-east-1.amazonaws.com/m@sha256:abc", ""):
        with pytest.raises(InfraError, match="is not an ECR image"):
            EcrImage.parse(bad)
