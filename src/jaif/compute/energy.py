"""Energy and carbon of jobs: Slurm's ConsumedEnergy where the site records it, else the site's power
model (partition power x allocated GPUs, or whole nodes, x elapsed), with the source marked; CO2 from
the grid's carbon intensity."""

from __future__ import annotations

from jaif.compute.site import Partition

SLURM = "slurm"  # measured: Slurm's ConsumedEnergy (acct_gather_energy plugin)
MODEL = "model"  # estimated: the partition's power model


def model_kwh(partition: Partition, *, nodes: int, gpus: int, elapsed_s: float) -> float:
    """Whole nodes x node power where the site charges nodes, else allocated GPUs x GPU power; x elapsed."""
    watts = nodes * partition.node_power_w if partition.charge == "node" else gpus * partition.gpu_power_w
    return watts * elapsed_s / 3_600_000.0


def job_energy(
    partition: Partition, *, nodes: int, gpus: int, elapsed_s: float, consumed_j: float | None
) -> tuple[float, str]:
    """(kWh, source): the measured energy when there is one, else the power model's."""
    if consumed_j is not None and consumed_j > 0:
        return consumed_j / 3_600_000.0, SLURM
    return model_kwh(partition, nodes=nodes, gpus=gpus, elapsed_s=elapsed_s), MODEL


def co2_kg(kwh: float, grid_g_per_kwh: float) -> float:
    return kwh * grid_g_per_kwh / 1000.0
