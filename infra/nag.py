"""cdk-nag on every synth, and acknowledgements that carry their reason in code.

cdk-nag 3 is a CDK validation plugin: `Validations.of(app).add_plugins(AwsSolutionsChecks(app))`. An
unacknowledged finding fails `app.synth()` (a `ValidationFailed` error, report in `<outdir>/validation-report.json`).
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

REPORT_FILE = "validation-report.json"


def enable_nag(app: cdk.App) -> None:
    """Run the AwsSolutions pack on everything the app synthesizes."""
    from cdk_nag import AwsSolutionsChecks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge AwsSolutions findings on `scope` and below: {"APIG3": "why", "IAM5[Resource::*]": "why"}.

    A finding with evidence (`IAM5[Action::s3:*]`) must be acknowledged by its full id, one at a time.
    """
    validations = cdk.Validations.of(scope)
    for rule, reason in reasons.items():
        validations.acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))
