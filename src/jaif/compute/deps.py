"""The site's scheduler for routes and pages: ``ComputeDep``, and ``SitePartitions`` (the names of the
partitions this site has), which calls and allocations are checked against when they are made; and
``download``: a file of a job's directory, streamed as an attachment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, BinaryIO
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import StreamingResponse

from jaif.compute.backend import Compute


def compute_of(request: Request) -> Compute:
    return request.app.state.compute


def site_partitions(request: Request) -> list[str]:
    return list(compute_of(request).partitions())


ComputeDep = Annotated[Compute, Depends(compute_of)]
SitePartitions = Annotated[list[str], Depends(site_partitions)]


CHUNK = 256 * 1024


def _chunks(file: BinaryIO, size: int) -> Iterator[bytes]:
    """The file's first ``size`` bytes (what it held when opened: a job may still write to it), then closed."""
    left = size
    try:
        while left > 0:
            data = file.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        file.close()


def download(file: BinaryIO, size: int, name: str) -> StreamingResponse:
    """A job's file as an attachment (never shown inline: it is the job's content), read as it is sent."""
    disposition = f"attachment; filename*=utf-8''{quote(name, safe='')}"
    return StreamingResponse(_chunks(file, size), media_type="application/octet-stream",
                             headers={"content-disposition": disposition, "content-length": str(size),
                                      "x-content-type-options": "nosniff"})
