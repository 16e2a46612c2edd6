"""Long lists in pages: the operator console's applications, allocations and organisations.

A page is ``?page=N`` (from 1) beside the list's filters; ``Pager`` says which rows to fetch (offset and
size) and links to the other pages with the filters kept. Templates show it with ``pager.html``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request

PAGE_SIZE = 50


def page_number(text: str | None) -> int:
    """``?page=`` as a page number; anything that is not a positive whole number is page 1."""
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Pager:
    page: int
    total: int
    size: int
    path: str
    params: tuple[tuple[str, str], ...]  # the query without ``page``

    @classmethod
    def of(cls, request: Request, *, page: str | int | None, total: int, size: int = PAGE_SIZE) -> Pager:
        """The pager of ``request``'s list of ``total`` rows; a page past the last is the last."""
        params = tuple((k, v) for k, v in request.query_params.multi_items() if k != "page" and v != "")
        pages = max(1, math.ceil(total / size))
        wanted = page if isinstance(page, int) else page_number(page)
        return cls(page=min(max(1, wanted), pages), total=total, size=size, path=request.url.path, params=params)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def first(self) -> int:
        """The number of the first row on this page (from 1); 0 when there are none."""
        return min(self.total, self.offset + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.offset + self.size)

    def href(self, page: int) -> str:
        params = [*self.params, ("page", str(page))] if page > 1 else list(self.params)
        return self.path + ("?" + urlencode(params) if params else "")
