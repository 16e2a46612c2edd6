"""Paging of every /api/v1 list: ``?limit=`` and ``?offset=`` in, a page of the list out.

The body stays a JSON array, as it was before lists came in pages, so scripts that read lists keep
working; the headers say what else there is:

- ``X-Total-Count``: how many rows match the filters, all pages together;
- ``Link`` (RFC 8288): the ``next`` and ``prev`` pages, and the ``first`` and ``last``, with the filters
  kept, e.g. ``</api/v1/allocations?status=active&limit=100&offset=100>; rel="next"``.

``limit`` is 1 to ``MAX_LIMIT`` (default ``DEFAULT_LIMIT``), ``offset`` 0 to ``MAX_OFFSET``; anything else
is a 400 in the API's error shape naming the parameter. Every list has a fixed order with the id last, so
pages neither repeat nor skip rows while the data stands still.

A route takes ``page: Paging`` and ``request``/``response``, asks its service for ``page.limit`` rows from
``page.offset`` and their total, and calls ``send(...)``; short lists that a service returns whole (a
project's keys, say) go through ``cut(...)`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from starlette.requests import Request
from starlette.responses import Response

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page, 1 to {MAX_LIMIT}.")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip, from 0.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


Paging = Annotated[Page, Depends(_page)]

PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of the list, in its order; the total and the links to other pages in headers.",
        "headers": {
            "X-Total-Count": {"description": "Rows matching the filters, all pages.", "schema": {"type": "integer"}},
            "Link": {"description": "RFC 8288 links: next, prev, first, last.", "schema": {"type": "string"}},
        },
    }
}


def _href(request: Request, *, limit: int, offset: int) -> str:
    url = request.url.include_query_params(limit=limit, offset=offset)
    return url.path + "?" + url.query


def send(request: Request, response: Response, page: Page, total: int) -> None:
    """Put the total and the links to the other pages of a list of ``total`` rows on ``response``."""
    links = []
    last = max(0, (total - 1) // page.limit * page.limit) if total else 0
    if page.offset + page.limit < total:
        links.append((page.offset + page.limit, "next"))
    if page.offset > 0:
        links.append((min(max(0, page.offset - page.limit), last), "prev"))
    links += [(0, "first"), (last, "last")]
    response.headers["X-Total-Count"] = str(total)
    response.headers["Link"] = ", ".join(
        f'<{_href(request, limit=page.limit, offset=offset)}>; rel="{rel}"' for offset, rel in links
    )


def cut(items: Sequence[T], request: Request, response: Response, page: Page) -> list[T]:
    """One page of a list a service returned whole, with the headers of ``send``."""
    send(request, response, page, len(items))
    return list(items[page.offset : page.offset + page.limit])
