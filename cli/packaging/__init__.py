"""Container images without a Docker engine: deterministic layers, OCI image layouts, and pushes to ECR or any
OCI registry. `mlfn build`, `mlfn push` and `mlfn runtime` are thin commands over these modules."""
