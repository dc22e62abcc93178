"""What a fresh emulated account needs before mlfn's CDK templates deploy: the SSM parameters AWS (or `cdk bootstrap`)
would have put there."""

from __future__ import annotations

from moto.ssm.models import ssm_backends

CDK_BOOTSTRAP_VERSION = "30"  # what `cdk bootstrap` (2.17x) records; templates require at least 6
FAKE_AMI = "ami-0123456789abcdef0"
PARAMETERS = {
    # CDK's BootstrapVersion parameter defaults to this name; CheckBootstrapVersion wants a number >= 6
    "/cdk-bootstrap/hnb659fds/version": CDK_BOOTSTRAP_VERSION,
    # what ECS GPU capacity (EcsOptimizedImage with AmiHardwareType.GPU) looks up
    "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id": FAKE_AMI,
    "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id": FAKE_AMI,
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id": FAKE_AMI,
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id": FAKE_AMI,
}


def seed(account: str, region: str) -> None:
    """Put the parameters above in `account`/`region` unless they exist."""
    ssm = ssm_backends[account][region]
    for name, value in PARAMETERS.items():
        if ssm.get_parameter(name) is None:
            ssm.put_parameter(
                name=name, description="seeded by the mlfn emulator", value=value, parameter_type="String",
                allowed_pattern=None, keyid=None, overwrite=True, tags=[], data_type="text", tier=None, policies=None,
            )
