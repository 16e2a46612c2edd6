"""Validate what jaif returns against the official OpenAPI document of the OpenAI API.

The document (/work/shared/openai/openapi.yaml, OpenAPI 3.1, 3 MB) is loaded once per process. Its
schemas are JSON Schema 2020-12 with a few OpenAPI leftovers, handled here rather than by loosening
validation:

- ``nullable: true`` (111 times, an OpenAPI 3.0 keyword that 3.1 dropped) is read as intended: the
  schema, or null. Draft 2020-12 would ignore it, so ``"usage": null`` in a stream chunk or
  ``"finish_reason": null`` would fail against a schema that OpenAI itself means to allow.
- ``discriminator`` and ``x-*`` keys are annotations; the validator ignores them and still applies the
  ``oneOf``/``anyOf`` beside them in full.
- ``format`` is not asserted (the document uses custom formats such as ``unixtime``).

One schema is added: ``CreateCompletionStreamResponse``. The document says streamed and plain
completions share ``CreateCompletionResponse``, but the API streams ``finish_reason: null`` until the
last token and, with ``stream_options.include_usage``, ``usage: null`` on every chunk but the last, which
that schema forbids. The added schema is ``CreateCompletionResponse`` with just those two fields nullable.

    from tests.support.openai_schema import assert_valid
    assert_valid(response.json(), "CreateChatCompletionResponse")
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(os.environ.get("JAIF_TEST_OPENAI_SPEC", "/work/shared/openai/openapi.yaml"))
BASE_URI = "urn:openai:openapi"


def _nullable_to_anyof(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into JSON Schema: ``anyOf: [schema, {type: null}]``."""
    if isinstance(node, list):
        return [_nullable_to_anyof(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_anyof(value) for key, value in node.items()}
    # Only the boolean keyword: a property *named* "nullable" would map to a schema (a dict).
    flag = out.get("nullable")
    if isinstance(flag, bool):
        del out["nullable"]
        if flag:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def document() -> dict:
    """The OpenAI OpenAPI document with OpenAPI-only keywords rewritten (loaded once per process)."""
    with SPEC_PATH.open("rb") as f:
        raw = yaml.load(f, Loader=yaml.CSafeLoader)
    doc = _nullable_to_anyof(raw)
    schemas = doc["components"]["schemas"]
    schemas["CreateCompletionStreamResponse"] = _streamed_completion(schemas["CreateCompletionResponse"])
    return doc


def _streamed_completion(plain: dict) -> dict:
    streamed = copy.deepcopy(plain)
    choice = streamed["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = {"anyOf": [choice["finish_reason"], {"type": "null"}]}
    streamed["properties"]["usage"] = {"anyOf": [streamed["properties"]["usage"], {"type": "null"}]}
    return streamed


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(BASE_URI, resource)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator for ``components.schemas.<name>``; ``#/components/...`` refs resolve in the document."""
    if name not in document()["components"]["schemas"]:
        raise KeyError(f"the OpenAI document has no schema {name!r}")
    schema = {"$ref": f"{BASE_URI}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=_registry())


def errors(instance: Any, name: str) -> list[str]:
    """Every way ``instance`` fails ``components.schemas.<name>``, as readable lines (empty: valid)."""
    found = list(validator(name).iter_errors(instance))
    lines = []
    for error in found:
        # anyOf/oneOf failures are clearer through the branch that came closest.
        error = best_match([error]) if error.context else error
        lines.append(f"{error.json_path}: {error.message[:300]}")
    return lines


def assert_valid(instance: Any, name: str) -> None:
    problems = errors(instance, name)
    if problems:
        listing = "\n  ".join(problems)
        raise AssertionError(f"not a valid OpenAI {name}:\n  {listing}\ninstance: {str(instance)[:2000]}")
