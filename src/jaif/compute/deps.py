"""The site's scheduler for routes and pages: ``ComputeDep``, and ``SitePartitions`` (the names of the
partitions this site has), which calls and allocations are checked against when they are made."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jaif.compute.backend import Compute


def compute_of(request: Request) -> Compute:
    return request.app.state.compute


def site_partitions(request: Request) -> list[str]:
    return list(compute_of(request).partitions())


ComputeDep = Annotated[Compute, Depends(compute_of)]
SitePartitions = Annotated[list[str], Depends(site_partitions)]
