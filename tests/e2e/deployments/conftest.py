"""The deployments' end-to-end tests use the compute tests' platforms (the Slurm test cluster)."""

from tests.e2e.compute.conftest import slurm, slurm_cluster  # noqa: F401
