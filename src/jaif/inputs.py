"""What every API input schema of the front door shares (calls, applications, allocations, directory).

- No unknown fields (a typo is an error, not silently ignored).
- No NUL characters in any string, dictionary key included: PostgreSQL text cannot hold them, and a
  database error must never be what refuses user input.
- Date-times without a zone are UTC; all lie between 1970 and 2200, so no date arithmetic overflows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not EARLIEST <= value <= LATEST:
            raise ValueError("must lie between 1970 and 2200")
        return value.astimezone(UTC)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


# GPU-hours per partition, as calls offer and applications ask for them.
PartitionName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Hours = Annotated[float, Field(ge=0, le=1e12)]
HoursPerPartition = Annotated[dict[PartitionName, Hours], Field(max_length=50)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _no_nul_utc(cls, value: Any) -> Any:
        return _clean(value)
