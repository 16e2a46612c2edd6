"""Every concept's models, imported so that Base.metadata knows all tables (Alembic, tests)."""

from jaif.access.models import ApiKey, Organisation, Project, ProjectMember, User
from jaif.db.base import Base
from jaif.inference.models import Model, ModelAlias, Replica
from jaif.metering.models import QuotaLease, RateWindow, UsageRecord

__all__ = [
    "ApiKey",
    "Base",
    "Model",
    "ModelAlias",
    "Organisation",
    "Project",
    "ProjectMember",
    "QuotaLease",
    "RateWindow",
    "Replica",
    "UsageRecord",
    "User",
]
