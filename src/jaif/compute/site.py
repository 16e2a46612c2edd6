"""The site profile: partitions with their hardware, power model and how GPU-hours are counted.

Built-in profiles (``compute.site``) give the partitions; ``compute.partitions`` replaces or adds
entries by name. Under Slurm, what ``sinfo`` reports (nodes, GPUs, CPUs, memory, maximum walltime)
wins, and the profile completes it with power, GPU model and charging.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from jaif.compute.scheduler import PartitionInfo
from jaif.config import ComputeSettings, PartitionProfile

# The JUPITER Booster (JSC): about 6,000 nodes of 4 NVIDIA GH200 (680 W each, Grace CPU included),
# 4 x 72 Arm cores and 4 x 120 GB LPDDR5X per node; JSC charges whole nodes.
JUPITER = [
    PartitionProfile(
        name="booster", nodes=5884, gpus_per_node=4, gpu_model="NVIDIA GH200", cpus_per_node=288,
        memory_gb_per_node=480, gpu_power_w=680, max_walltime_min=24 * 60, charge="node",
    ),
    PartitionProfile(
        name="develbooster", nodes=16, gpus_per_node=4, gpu_model="NVIDIA GH200", cpus_per_node=288,
        memory_gb_per_node=480, gpu_power_w=680, max_walltime_min=2 * 60, charge="node",
    ),
]


@dataclass(frozen=True)
class Partition:
    """A partition as jaif uses it: hardware, limits, power and charging."""

    name: str
    nodes: int
    gpus_per_node: int
    gpu_model: str
    cpus_per_node: int
    memory_gb_per_node: float
    gpu_power_w: float
    node_power_w: float
    max_walltime_min: int | None
    charge: str  # "gpu" | "node"

    def charged_gpus(self, *, nodes: int, gpus: int) -> int:
        """GPUs a job is charged for: those it holds, or every GPU of its nodes where whole nodes are charged."""
        return nodes * self.gpus_per_node if self.charge == "node" else gpus

    def gpu_hours(self, *, nodes: int, gpus: int, elapsed_s: float) -> float:
        return self.charged_gpus(nodes=nodes, gpus=gpus) * elapsed_s / 3600.0


def preferred_partition(partitions: dict[str, Partition]) -> str | None:
    """The partition a new site's calls offer: JUPITER's ``booster`` where the site has it, else the one
    with the most GPUs (then the first by name); None for a site without partitions."""
    if "booster" in partitions:
        return "booster"
    ranked = sorted(partitions.values(), key=lambda p: (-p.nodes * p.gpus_per_node, p.name))
    return ranked[0].name if ranked else None


def from_profile(p: PartitionProfile) -> Partition:
    node_power = p.node_power_w if p.node_power_w is not None else p.gpus_per_node * p.gpu_power_w
    return Partition(
        name=p.name, nodes=p.nodes, gpus_per_node=p.gpus_per_node, gpu_model=p.gpu_model,
        cpus_per_node=p.cpus_per_node, memory_gb_per_node=p.memory_gb_per_node, gpu_power_w=p.gpu_power_w,
        node_power_w=node_power, max_walltime_min=p.max_walltime_min, charge=p.charge,
    )


def profile(settings: ComputeSettings) -> dict[str, PartitionProfile]:
    """The partitions the settings describe: the built-in profile, overridden and extended by name."""
    if settings.site == "jupiter":
        base = list(JUPITER)
    else:
        base = [
            PartitionProfile(
                name="local", nodes=1, gpus_per_node=settings.local_gpus, gpu_model="GPU slot",
                cpus_per_node=settings.local_cpus or os.cpu_count() or 1, memory_gb_per_node=16,
                gpu_power_w=700, max_walltime_min=24 * 60, charge="gpu",
            )
        ]
    found = {p.name: p for p in base}
    found.update({p.name: p for p in settings.partitions})
    return found


def resolve(settings: ComputeSettings, reported: list[PartitionInfo] | None) -> dict[str, Partition]:
    """Partitions by name. ``reported`` (the scheduler's, e.g. sinfo) decides which exist and their
    hardware; None means the scheduler reports nothing and the profile alone describes them."""
    known = profile(settings)
    if reported is None:
        return {name: from_profile(p) for name, p in known.items()}
    partitions = {}
    for info in reported:
        p = known.get(info.name) or PartitionProfile(name=info.name)
        gpu_power = p.gpu_power_w
        node_power = p.node_power_w if p.node_power_w is not None else info.gpus_per_node * gpu_power
        partitions[info.name] = Partition(
            name=info.name, nodes=info.nodes, gpus_per_node=info.gpus_per_node, gpu_model=p.gpu_model,
            cpus_per_node=info.cpus_per_node, memory_gb_per_node=math.floor(info.memory_mb_per_node / 1024 * 10) / 10,
            gpu_power_w=gpu_power, node_power_w=node_power, max_walltime_min=info.max_walltime_min, charge=p.charge,
        )
    return partitions
