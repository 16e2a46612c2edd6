"""engines.py: the scripts each engine renders (vLLM cannot run here: its script and arguments are
checked as text), and the command engine's script run for real."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import httpx
import pytest

from jaif.deployments import engines
from jaif.deployments.engines import Launch
from jaif.errors import InvalidRequest


def launch(**kw) -> Launch:
    return Launch(**({"name": "chat", "model": "/w/model.gguf", "gpus": 0, "bind": "127.0.0.1"} | kw))


def exec_argv(script: str) -> list[str]:
    line = next(x for x in script.splitlines() if x.startswith("exec "))
    return shlex.split(line.removeprefix("exec ").replace('"$PORT"', "PORT"))


def test_every_script_picks_a_port_and_writes_where_it_listens_first():
    for engine, extra in (("llama-cpp", {}), ("vllm", {"gpus": 4}), ("command", {"command": "srv --port {port}"})):  # noqa: E501
        script = engines.get(engine).script(launch(**extra))
        assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
        assert "PORT=$(python3 -c" in script
        assert "> endpoint.tmp && mv endpoint.tmp endpoint" in script
        assert ("JAIF_REPLICA_KEY" in script) == (engine != "command")  # from the environment, never a literal
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # valid bash


def test_llama_cpp_serves_the_model_under_the_deployment_name_with_the_replica_key():
    engine = engines.get("llama-cpp")
    script = engine.script(launch(python="/venv/bin/python"))
    assert exec_argv(script) == ["/venv/bin/python", "-m", "llama_cpp.server", "--model", "/w/model.gguf",
                                 "--model_alias", "chat", "--host", "127.0.0.1", "--port", "PORT",
                                 "--n_gpu_layers", "0", "--interrupt_requests", "false",
                                 "--cache", "true"]
    assert 'export API_KEY="$JAIF_REPLICA_KEY"; unset JAIF_REPLICA_KEY' in script
    argv = exec_argv(engine.script(launch(gpus=1)))
    assert argv[argv.index("--n_gpu_layers") + 1] == "-1"  # every layer on the GPU
    assert engine.readiness_path == "/v1/models"


def test_vllm_tensor_parallel_equals_the_gpus_with_the_flags_a_gh200_node_needs():
    engine = engines.get("vllm")
    script = engine.script(launch(model="/p/Llama-3.1-70B", gpus=4, bind="0.0.0.0"))
    assert exec_argv(script) == [
        "vllm", "serve", "/p/Llama-3.1-70B", "--served-model-name", "chat", "--host", "0.0.0.0", "--port", "PORT",
        "--tensor-parallel-size", "4", "--distributed-executor-backend", "mp", "--gpu-memory-utilization", "0.90",
        "--uvicorn-log-level", "warning",
    ]
    assert "export VLLM_WORKER_MULTIPROC_METHOD=spawn HF_HUB_OFFLINE=1" in script
    assert 'export VLLM_API_KEY="$JAIF_REPLICA_KEY"' in script
    assert engine.readiness_path == "/health"


def test_a_model_path_with_spaces_and_quotes_stays_one_argument():
    script = engines.get("llama-cpp").script(launch(model="/w/it's a model.gguf"))
    assert exec_argv(script)[4] == "/w/it's a model.gguf"


@pytest.mark.parametrize("engine,kw,param,words", [
    ("llama-cpp", {"model": "/w/model.safetensors"}, "model", "is not a .gguf file"),
    ("llama-cpp", {"command": "x {port}"}, "command", "for the command engine only"),
    ("vllm", {"gpus": 0}, "gpus_per_replica", "at least one GPU"),
    ("command", {"command": None}, "command", "needs --command"),
    ("command", {"command": "srv --listen 8000"}, "command", "must listen on {port}"),
    ("command", {"command": "srv --port {port} --key {secret}"}, "command", "unknown placeholder(s) {secret}"),
    ("command", {"command": "srv --port {port}"}, "command", "must make the server require the replica's key"),
])
def test_what_could_not_start_is_refused(engine, kw, param, words):
    args = {"model": "/w/model.gguf", "gpus": 1, "command": None} | kw
    with pytest.raises(InvalidRequest) as refused:
        engines.get(engine).validate(**args)
    assert refused.value.param == param and words in refused.value.message


def test_an_unknown_engine_names_the_known_ones():
    with pytest.raises(InvalidRequest, match="unknown engine 'tgi'; engines: llama-cpp, vllm, command"):
        engines.get("tgi")


def test_the_command_engine_passes_the_key_where_asked():
    script = engines.get("command").script(launch(command="srv --port {port} --api-key {api_key} --gpus {gpus}"))
    assert script.splitlines()[-1] == 'srv --port "$PORT" --api-key "$JAIF_REPLICA_KEY" --gpus 0'


def test_the_command_engine_script_runs_says_where_it_listens_and_answers(tmp_path):
    """The rendered script for real: a stand-in OpenAI server started by the operator's command line."""
    # The key from the environment, as docs/deployments.md advises (the stand-in does not check it).
    command = (f'UPSTREAM_KEY="$JAIF_REPLICA_KEY" {shlex.quote(sys.executable)} -m jaif.testing.upstream '
               "--host {host} --port {port} --model {name}")
    script = engines.get("command").script(launch(command=command))
    (tmp_path / "job.sh").write_text(script)
    env = {"PATH": os.environ["PATH"], "JAIF_REPLICA_KEY": "k", "JAIF_REPLICA_NODE": "127.0.0.1",
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}
    proc = subprocess.Popen(["bash", "job.sh"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        endpoint = tmp_path / "endpoint"
        for _ in range(600):
            if endpoint.exists():
                break
            proc.poll()
            assert proc.returncode is None
            time.sleep(0.05)
        node, port = endpoint.read_text().split()
        assert node == "127.0.0.1" and 0 < int(port) < 65536
        for _ in range(600):
            try:
                models = httpx.get(f"http://127.0.0.1:{port}{engines.get('command').readiness_path}", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "chat"
    finally:
        proc.terminate()
        proc.wait(10)
