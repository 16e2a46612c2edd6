"""Job templates: batch scripts with parameters (``--template T --param K=V``).

Every parameter value is shell-quoted into the script; unknown and missing parameters are refused.
The service adds what it knows (GPUs per node, the gateway's address) as ``context``; a template with
``job_key`` gets a credential of its own job in its environment (OPENAI_API_KEY), never in a file. A
``file`` parameter names one of the project's files by its id; the service copies it into the job's
directory and renders the parameter as its name there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from string import Template

from jaif.errors import InvalidRequest


@dataclass(frozen=True)
class Param:
    help: str
    default: str | None = None  # None: required
    words: bool = False  # split like a shell command line (arguments), each word quoted
    # A file of the project's (its id, file-…): the job gets a copy in its directory, the script its name there.
    file: bool = False


@dataclass(frozen=True)
class JobTemplate:
    name: str
    summary: str
    params: dict[str, Param]
    body: str
    context: tuple[str, ...] = field(default=())
    job_key: bool = False  # the job calls the gateway: it gets a key of its own (OPENAI_API_KEY)

    def render(self, params: dict[str, str], context: dict[str, str]) -> str:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise InvalidRequest(
                f"template {self.name} has no parameter {', '.join(unknown)}; it takes {', '.join(self.params)}",
                param="params",
            )
        values = {}
        for key, spec in self.params.items():
            value = params.get(key, spec.default)
            if value is None:
                raise InvalidRequest(f"template {self.name} needs --param {key}=... ({spec.help})", param="params")
            if "\x00" in value or "\n" in value:
                raise InvalidRequest(f"--param {key}: one line of text, please", param="params")
            values[key] = _words(key, value) if spec.words else shlex.quote(value)
        values.update({key: shlex.quote(str(context[key])) for key in self.context})
        header = f"#!/bin/bash\n# jaif template {self.name}: {self.summary}\nset -euo pipefail\n"
        return header + Template(self.body).substitute(values)


def _words(key: str, value: str) -> str:
    """``value`` split as a shell would split a command line, each word quoted."""
    try:
        words = shlex.split(value)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise InvalidRequest(
            f"--param {key}: {exc} (an unbalanced quote or a trailing backslash); quote each argument "
            "that has spaces, and close every quote", param=f"params.{key}",
        ) from None
    return " ".join(shlex.quote(w) for w in words)


_PYTHON = JobTemplate(
    name="python",
    summary="a Python script on one GPU",
    params={
        "script": Param("the Python file, relative to the job's directory or absolute"),
        "args": Param("its arguments", default="", words=True),
        "python": Param("the interpreter", default="python3"),
    },
    body='echo "job $${SLURM_JOB_ID:-$${JAIF_JOB_ID:-}} on $$(hostname), GPUs: $${CUDA_VISIBLE_DEVICES:-none}"\n'
    "exec $python $script $args\n",
)

_TORCHRUN = JobTemplate(
    name="torchrun",
    summary="PyTorch distributed over the job's nodes, srun starting one torchrun per node",
    params={
        "script": Param("the training script"),
        "args": Param("its arguments", default="", words=True),
        "port": Param("the rendezvous port on the first node", default="29500"),
        "python": Param("the interpreter with torch (torchrun is its torch.distributed.run)", default="python3"),
    },
    context=("gpus_per_node",),
    # The rendezvous address is the first node's NodeAddr (its host name where Slurm has none of its own).
    body="if command -v srun >/dev/null && [ -n \"$${SLURM_JOB_ID:-}\" ]; then\n"
    '  head=$$(scontrol show hostnames "$$SLURM_JOB_NODELIST" | head -n 1)\n'
    '  addr=$$(scontrol show node "$$head" -o | tr " " "\\n" | sed -n "s/^NodeAddr=//p")\n'
    "  exec srun --ntasks-per-node=1 $python -m torch.distributed.run --nnodes=\"$$SLURM_JOB_NUM_NODES\" \\\n"
    '    --nproc-per-node=$gpus_per_node --rdzv-id="$$SLURM_JOB_ID" --rdzv-backend=c10d \\\n'
    '    --rdzv-endpoint="$${addr:-$$head}:"$port $script $args\n'
    "fi\n"
    "exec $python -m torch.distributed.run --standalone --nproc-per-node=$gpus_per_node $script $args\n",
)

_LORA = JobTemplate(
    name="lora",
    summary="LoRA fine-tuning of a catalogue model (transformers + peft)",
    params={
        "model": Param("the model: a catalogue model (a gateway model, alias or solution served by a built-in "
                       "replica, e.g. smollm2-135m-instruct), a weights directory, or a GGUF file"),
        "data": Param("training data, JSONL with a 'text' field per line"),
        "output": Param("where the adapter is saved", default="lora-adapter"),
        "epochs": Param("passes over the data", default="1"),
        "rank": Param("LoRA rank", default="8"),
        "lr": Param("learning rate", default="2e-4"),
        "max_length": Param("tokens per example at most", default="1024"),
        "steps": Param("stop after this many steps (0: no limit)", default="0"),
        "python": Param("the interpreter with torch, transformers, peft (and gguf for GGUF files)",
                        default="python3"),
    },
    # Offline: the model comes from the file system, never from a model hub.
    body="export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1\n"
    "exec $python - $model $data $output $epochs $rank $lr $max_length $steps <<'PY'\n"
    "import json, os, sys\n"
    "import torch\n"
    "from peft import LoraConfig, get_peft_model\n"
    "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
    "model_name, data, output, epochs, rank, lr, max_length, steps = sys.argv[1:9]\n"
    "where = {}\n"
    "if model_name.endswith('.gguf'):  # transformers de-quantises it (needs the gguf package)\n"
    "    model_name, where['gguf_file'] = os.path.split(os.path.abspath(model_name))\n"
    "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
    "tok = AutoTokenizer.from_pretrained(model_name, **where)\n"
    "model = AutoModelForCausalLM.from_pretrained(\n"
    "    model_name, dtype=torch.bfloat16 if device == 'cuda' else torch.float32, **where)\n"
    "model = get_peft_model(model, LoraConfig(r=int(rank), lora_alpha=2 * int(rank), task_type='CAUSAL_LM'))\n"
    "model.to(device).train()\n"
    "opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=float(lr))\n"
    "texts = [json.loads(line)['text'] for line in open(data) if line.strip()]\n"
    "done, limit = 0, int(steps)\n"
    "for epoch in range(int(epochs)):\n"
    "    for text in texts:\n"
    "        if limit and done >= limit:\n"
    "            break\n"
    "        batch = tok(text, return_tensors='pt', truncation=True, max_length=int(max_length)).to(device)\n"
    "        loss = model(**batch, labels=batch['input_ids']).loss\n"
    "        loss.backward(); opt.step(); opt.zero_grad()\n"
    "        done += 1\n"
    "        print(f'epoch {epoch + 1} step {done}: loss {loss.item():.4f}', flush=True)\n"
    "model.save_pretrained(output)\n"
    "print(f'adapter written to {os.path.abspath(output)} after {done} steps', flush=True)\n"
    "PY\n",
)

_BATCH_INFERENCE = JobTemplate(
    name="batch-inference",
    summary="batch inference over a JSONL file through the gateway, with the job's own key",
    params={
        "input": Param("one of the project's files (its id, file-…): JSONL, one request per line, "
                       "{'messages': [...]} or {'prompt': '...'}", file=True),
        "output": Param("JSONL of the answers", default="results.jsonl"),
        "model": Param("the gateway's model", default="default-chat"),
        "max_tokens": Param("most tokens per answer", default="256"),
    },
    context=("base_url",),
    job_key=True,
    body="exec python3 - $input $output $model $max_tokens $base_url <<'PY'\n"
    "import json, os, sys, urllib.request\n"
    "src, dst, model, max_tokens, base = sys.argv[1:6]\n"
    "key = os.environ['OPENAI_API_KEY']  # this job's own credential: it ends with the job\n"
    "done = 0\n"
    "with open(src) as lines, open(dst, 'w') as out:\n"
    "    for line in lines:\n"
    "        if not line.strip():\n"
    "            continue\n"
    "        item = json.loads(line)\n"
    "        messages = item.get('messages') or [{'role': 'user', 'content': item['prompt']}]\n"
    "        body = json.dumps({'model': model, 'messages': messages, 'max_tokens': int(max_tokens)}).encode()\n"
    "        req = urllib.request.Request(base.rstrip('/') + '/chat/completions', data=body, headers={\n"
    "            'authorization': 'Bearer ' + key, 'content-type': 'application/json'})\n"
    "        with urllib.request.urlopen(req, timeout=600) as resp:\n"
    "            answer = json.load(resp)\n"
    "        out.write(json.dumps({'request': item, 'response': answer}) + '\\n')\n"
    "        done += 1\n"
    "print(f'{done} requests answered, written to {dst}')\n"
    "PY\n",
)

TEMPLATES: dict[str, JobTemplate] = {t.name: t for t in (_PYTHON, _TORCHRUN, _LORA, _BATCH_INFERENCE)}


def get(name: str) -> JobTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise InvalidRequest(
            f"no job template {name!r}; templates: {', '.join(TEMPLATES)}", param="template"
        ) from None


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``K=V`` strings (the CLI's ``--param``) as a dict."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"--param {pair!r}: write it as KEY=VALUE", param="params")
        params[key.strip()] = value
    return params
