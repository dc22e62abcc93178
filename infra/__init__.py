"""mlfn's infrastructure as code: one CDK construct per target and the app `cdk.json` runs."""
