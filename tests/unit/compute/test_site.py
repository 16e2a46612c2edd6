"""Site profiles, charging (per GPU or whole nodes), the power model, CO2 and account names."""

from __future__ import annotations

import pytest

from jaif.compute.energy import MODEL, SLURM, co2_kg, job_energy
from jaif.compute.naming import org_account, project_account
from jaif.compute.scheduler import PartitionInfo
from jaif.compute.site import preferred_partition, resolve
from jaif.config import ComputeSettings, PartitionProfile


def test_jupiter_profile_charges_whole_nodes_of_four_gh200():
    booster = resolve(ComputeSettings(site="jupiter"), None)["booster"]
    assert (booster.gpus_per_node, booster.gpu_model, booster.gpu_power_w) == (4, "NVIDIA GH200", 680)
    assert booster.charge == "node" and booster.node_power_w == 4 * 680
    # a 1-GPU job for 2 hours on JUPITER costs the whole node: 8 GPU-hours, 5.44 kWh
    assert booster.gpu_hours(nodes=1, gpus=1, elapsed_s=7200) == 8
    kwh, source = job_energy(booster, nodes=1, gpus=1, elapsed_s=7200, consumed_j=None)
    assert kwh == pytest.approx(5.44) and source == MODEL


def test_per_gpu_charging_and_measured_energy_wins():
    local = resolve(ComputeSettings(local_gpus=2), None)["local"]
    assert local.gpus_per_node == 2 and local.charge == "gpu"
    assert local.gpu_hours(nodes=1, gpus=2, elapsed_s=1800) == 1.0
    assert job_energy(local, nodes=1, gpus=2, elapsed_s=3600, consumed_j=None) == (pytest.approx(1.4), MODEL)
    assert job_energy(local, nodes=1, gpus=2, elapsed_s=3600, consumed_j=3_600_000) == (1.0, SLURM)
    assert co2_kg(10.0, 380) == pytest.approx(3.8)


def test_scheduler_partitions_completed_by_the_profile():
    settings = ComputeSettings(partitions=[PartitionProfile(name="gpu", gpu_model="H100", gpu_power_w=500,
                                                           charge="node", nodes=99, gpus_per_node=99)])
    reported = [PartitionInfo("gpu", 2, 4, 8, 16384, 120), PartitionInfo("cpu", 3, 0, 64, 8192, None)]
    parts = resolve(settings, reported)
    assert sorted(parts) == ["cpu", "gpu"]  # the scheduler decides which exist; "local" is not one
    gpu = parts["gpu"]
    assert (gpu.nodes, gpu.gpus_per_node, gpu.max_walltime_min, gpu.memory_gb_per_node) == (2, 4, 120, 16.0)
    assert (gpu.gpu_model, gpu.gpu_power_w, gpu.node_power_w, gpu.charge) == ("H100", 500, 2000, "node")
    assert parts["cpu"].charge == "gpu" and parts["cpu"].max_walltime_min is None


def test_account_names_are_valid_and_distinct():
    assert project_account("llm-lab") == "llm-lab"
    assert project_account("LLM-Lab") != project_account("llm-lab")
    name = org_account("Uni Jülich", "org_")
    assert name.startswith("org_uni_j_lich_") and len(name) == len("org_uni_j_lich_") + 6
    assert len(project_account("x" * 300)) <= 40
    assert project_account("a b") != project_account("a_b")


def test_the_seeded_calls_offer_booster_or_the_site_partition_with_most_gpus():
    local = resolve(ComputeSettings(), None)
    assert preferred_partition(local) == "local"
    assert preferred_partition(resolve(ComputeSettings(site="jupiter"), None)) == "booster"
    reported = [PartitionInfo(name="debug", nodes=1, gpus_per_node=4, cpus_per_node=8, memory_mb_per_node=1024,
                              max_walltime_min=60),
                PartitionInfo(name="gpu", nodes=4, gpus_per_node=4, cpus_per_node=8, memory_mb_per_node=1024,
                              max_walltime_min=None)]
    assert preferred_partition(resolve(ComputeSettings(), reported)) == "gpu"
    assert preferred_partition({}) is None
