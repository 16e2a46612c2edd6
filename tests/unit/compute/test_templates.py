"""Job templates: parameters are required or defaulted, unknown ones refused, every value shell-quoted."""

from __future__ import annotations

import subprocess

import pytest

from jaif.compute import templates
from jaif.errors import InvalidRequest


def test_values_are_quoted_so_they_stay_values(tmp_path):
    script = templates.get("python").render({"script": "train.py; rm -rf /", "args": "--lr 0.1 '$HOME'"}, {})
    assert script.startswith("#!/bin/bash\n")
    assert "'train.py; rm -rf /'" in script and "--lr 0.1 '$HOME'" in script
    # bash parses it, and would run exactly one python command
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0


def test_missing_and_unknown_parameters_are_refused_with_the_list():
    with pytest.raises(InvalidRequest, match="needs --param script="):
        templates.get("python").render({}, {})
    with pytest.raises(InvalidRequest, match="has no parameter colour"):
        templates.get("python").render({"script": "a.py", "colour": "red"}, {})
    with pytest.raises(InvalidRequest, match="no job template 'nope'; templates: python, torchrun"):
        templates.get("nope")
    with pytest.raises(InvalidRequest, match="KEY=VALUE"):
        templates.parse_params(["novalue"])
    assert templates.parse_params(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}


@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
def test_every_template_renders_valid_bash(name):
    tpl = templates.get(name)
    params = {k: "value" for k, p in tpl.params.items() if p.default is None}
    context = {"gpus_per_node": "4", "base_url": "http://gw/v1", "key_file": "/tmp/key"}
    script = tpl.render(params, context)
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0, script


def test_torchrun_starts_one_torchrun_per_node_with_srun():
    script = templates.get("torchrun").render({"script": "train.py"}, {"gpus_per_node": "4"})
    assert "srun --ntasks-per-node=1 python3 -m torch.distributed.run" in script and "--nproc-per-node=4" in script
