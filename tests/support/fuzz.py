"""Schemathesis over jaif's REST API in-process: each operation fuzzed as each kind of caller.

Half of the generated cases get a real id (from ``known``) in place of the random one, in path
parameters and in the body fields named in ``body_ids``, so that fuzzed bodies reach the services
rather than only "404 not found". Every answer must not be a 5xx and must be as documented.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance


def fuzz_all(
    operations: Iterable,
    runs: Iterable[tuple[str, GenerationMode]],
    tokens: dict[str, str],
    known: dict[str, str],
    *,
    max_examples: int,
    body_ids: tuple[str, ...] = (),
) -> dict[str, set[int]]:
    """Fuzz every operation once per (caller, mode) in runs; returns the statuses seen per operation."""
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        seen = statuses.setdefault(f"{operation.method.upper()} {operation.path}", set())
        for who, mode in runs:
            _fuzz(operation, mode, tokens[who], known, seen, max_examples=max_examples, body_ids=body_ids)
    return statuses


def _fuzz(operation, mode, token, known, seen, *, max_examples: int, body_ids: tuple[str, ...]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case):
        params = case.path_parameters or {}
        for name in params:
            if name in known and hash(str(params[name])) % 2:
                params[name] = known[name]
        if isinstance(case.body, dict) and hash(str(case.body)) % 2:
            for name in body_ids:
                if name in case.body:
                    case.body[name] = known[name]
        response = case.call_and_validate(
            headers={"authorization": f"Bearer {token}"},
            checks=[not_a_server_error, response_schema_conformance],
        )
        seen.add(response.status_code)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing in this operation's document can be broken (a bare string path parameter, no body).
        assert mode == GenerationMode.NEGATIVE, operation.path
