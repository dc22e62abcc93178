"""Model images as OCI data, built and pushed without a Docker engine."""
