"""Engines: how a replica of each kind starts, and how the controller knows it is ready.

Each engine is an adapter behind ``Engine``: it renders the replica's batch script and names its
readiness path. Every script does the same around the engine's own command line:

1. picks a free TCP port on its node (the kernel's choice, through ``python3``),
2. writes ``NODE PORT`` to the file ``endpoint`` in its job's directory (its working directory),
   atomically; the controller reads it to learn where the replica listens,
3. execs the engine, listening on that port, serving the model under the deployment's name, and
   requiring the replica's bearer key (``JAIF_REPLICA_KEY`` in the job's environment, never in the
   script): only the gateway can use the replica.

``llama-cpp``: llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``; CPU, or all
layers on the GPU when the replica has GPUs). It has no ``/health``: its ``/v1/models`` answers once the
model is loaded, so that is its readiness check.

``vllm``: ``vllm serve`` with ``--tensor-parallel-size`` equal to the replica's GPUs (one node), and what
a GH200 node of JUPITER needs: the multiprocessing executor (no Ray cluster inside a job), workers
spawned (not forked after CUDA is initialised), the Hugging Face hub offline (compute nodes have no
internet: the weights must be a path or in the shared cache). Readiness: ``/health``.

``command``: any OpenAI-compatible server, from the operator's command line with placeholders
``{port}`` (required), ``{host}``, ``{model}``, ``{name}``, ``{gpus}`` and ``{api_key}``. Readiness:
``GET /v1/models``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Protocol

from jaif.errors import InvalidRequest

FREE_PORT = "python3 -c 'import socket; s=socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])'"
PLACEHOLDER = re.compile(r"\{([a-z_]*)\}")
COMMAND_PLACEHOLDERS = ("port", "host", "model", "name", "gpus", "api_key")


@dataclass(frozen=True)
class Launch:
    """What a replica's script needs to know."""

    name: str  # the deployment's name: the model id the engine serves
    model: str  # the weights' path (or the engine's own model id)
    gpus: int
    bind: str  # the address the engine listens on (local: 127.0.0.1; Slurm: 0.0.0.0)
    python: str = "python3"  # the interpreter with llama-cpp-python
    command: str | None = None  # the command engine's template


class Engine(Protocol):
    name: str
    readiness_path: str  # GET it on the replica's root; 200 means ready (and healthy)

    def validate(self, *, model: str, gpus: int, command: str | None) -> None:
        """Raise InvalidRequest when a deployment of this engine could not start."""
        ...

    def script(self, launch: Launch) -> str:
        """The replica's batch script (bash)."""
        ...


def _preamble(launch: Launch) -> str:
    endpoint = "endpoint"  # in the job's directory: its working directory, locally and under Slurm
    return (
        "#!/bin/bash\n"
        f"# jaif deployment {launch.name}: one replica (docs/deployments.md)\n"
        "set -euo pipefail\n"
        f"PORT=$({FREE_PORT})\n"
        'NODE="${JAIF_REPLICA_NODE:-$(hostname)}"\n'
        f"printf '%s %s\\n' \"$NODE\" \"$PORT\" > {endpoint}.tmp && mv {endpoint}.tmp {endpoint}\n"
    )


def _line(argv: list[str]) -> str:
    """A shell command line from argv, leaving the script's own variables (``$PORT``...) to the shell."""
    return " ".join(a if a.startswith('"$') else shlex.quote(a) for a in argv)


class LlamaCpp:
    name = "llama-cpp"
    readiness_path = "/v1/models"

    def validate(self, *, model: str, gpus: int, command: str | None) -> None:
        if command:
            raise InvalidRequest("--command is for the command engine only", param="command")
        if not model.endswith(".gguf"):
            raise InvalidRequest(f"the llama-cpp engine runs GGUF weights; {model!r} is not a .gguf file",
                                 param="model")

    def argv(self, launch: Launch) -> list[str]:
        return [launch.python, "-m", "llama_cpp.server", "--model", launch.model, "--model_alias", launch.name,
                "--host", launch.bind, "--port", '"$PORT"', "--n_gpu_layers", "-1" if launch.gpus else "0",
                # by default a new request aborts the one under way (its stream just ends): queue them instead
                "--interrupt_requests", "false",
                # keep prompts' states (in RAM, 2 GiB at most), so the gateway's prefix affinity hits them
                "--cache", "true"]

    def script(self, launch: Launch) -> str:
        # llama-cpp-python's server reads its key from API_KEY (its settings are environment-aware)
        return (_preamble(launch) + 'export API_KEY="$JAIF_REPLICA_KEY"; unset JAIF_REPLICA_KEY\n'
                + "exec " + _line(self.argv(launch)) + "\n")


class Vllm:
    name = "vllm"
    readiness_path = "/health"

    def validate(self, *, model: str, gpus: int, command: str | None) -> None:
        if command:
            raise InvalidRequest("--command is for the command engine only", param="command")
        if gpus < 1:
            raise InvalidRequest("the vllm engine needs at least one GPU per replica", param="gpus_per_replica")

    def argv(self, launch: Launch) -> list[str]:
        return ["vllm", "serve", launch.model, "--served-model-name", launch.name, "--host", launch.bind,
                "--port", '"$PORT"', "--tensor-parallel-size", str(launch.gpus),
                "--distributed-executor-backend", "mp", "--gpu-memory-utilization", "0.90",
                "--uvicorn-log-level", "warning"]

    def script(self, launch: Launch) -> str:
        return (_preamble(launch)
                + "export VLLM_WORKER_MULTIPROC_METHOD=spawn HF_HUB_OFFLINE=1\n"
                + 'export VLLM_API_KEY="$JAIF_REPLICA_KEY"; unset JAIF_REPLICA_KEY\n'
                + "exec " + _line(self.argv(launch)) + "\n")


class Command:
    name = "command"
    readiness_path = "/v1/models"

    def validate(self, *, model: str, gpus: int, command: str | None) -> None:
        if not command or not command.strip():
            raise InvalidRequest("the command engine needs --command, e.g. 'my-server --port {port}'",
                                 param="command")
        names = PLACEHOLDER.findall(command)
        unknown = sorted({n for n in names if n not in COMMAND_PLACEHOLDERS})
        if unknown:
            raise InvalidRequest(f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} in --command; "
                                 f"known: {', '.join('{' + n + '}' for n in COMMAND_PLACEHOLDERS)}", param="command")
        if "port" not in names:
            raise InvalidRequest("--command must listen on {port}: the replica's port is chosen when it starts",
                                 param="command")
        # A replica listens on the node's network: without the key anyone there could use it, unmetered.
        if "api_key" not in names and "JAIF_REPLICA_KEY" not in command:
            raise InvalidRequest("--command must make the server require the replica's key: pass it from the "
                                 "environment (e.g. 'MY_SERVER_API_KEY=\"$JAIF_REPLICA_KEY\" my-server …') or as "
                                 "{api_key}", param="command")

    def line(self, launch: Launch) -> str:
        values = {"port": '"$PORT"', "host": shlex.quote(launch.bind), "model": shlex.quote(launch.model),
                  "name": shlex.quote(launch.name), "gpus": str(launch.gpus), "api_key": '"$JAIF_REPLICA_KEY"'}
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], launch.command or "")

    def script(self, launch: Launch) -> str:
        return _preamble(launch) + self.line(launch) + "\n"


ENGINES: dict[str, Engine] = {e.name: e for e in (LlamaCpp(), Vllm(), Command())}


def get(name: str) -> Engine:
    if name not in ENGINES:
        raise InvalidRequest(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}", param="engine")
    return ENGINES[name]
