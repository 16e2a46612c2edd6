"""Every concept's models, imported so that Base.metadata knows all tables (Alembic, tests)."""

from jaif.access.models import ApiKey, Organisation, Project, ProjectMember, User
from jaif.allocations.models import Allocation
from jaif.applications.models import Application, ApplicationEvent, Review
from jaif.batches.models import Batch
from jaif.calls.models import AccessCall
from jaif.catalogue.models import Solution
from jaif.chat.models import ChatMessage, Conversation
from jaif.compute.models import Job, JobRecord, SlurmUser
from jaif.db.base import Base
from jaif.deployments.models import Deployment, DeploymentEvent, DeploymentReplica, GatewayLoad
from jaif.files.models import StoredFile
from jaif.identity.models import OneTimeToken, PersonalAccessToken, SignInThrottle, SsoIdentity
from jaif.inference.models import Model, ModelAlias, Replica
from jaif.metering.models import QuotaLease, RateWindow, UsageDaily, UsageRecord
from jaif.notify.models import Notification
from jaif.responses.models import StoredResponse
from jaif.support.models import SupportReply, SupportRequest
from jaif.training.models import TrainingEvent, TrainingRegistration

__all__ = [
    "ChatMessage",
    "Conversation",
    "Batch",
    "StoredFile",
    "Deployment",
    "DeploymentEvent",
    "DeploymentReplica",
    "GatewayLoad",
    "Job",
    "JobRecord",
    "SlurmUser",
    "AccessCall",
    "Allocation",
    "Application",
    "ApplicationEvent",
    "Notification",
    "OneTimeToken",
    "PersonalAccessToken",
    "Review",
    "SignInThrottle",
    "Solution",
    "SsoIdentity",
    "StoredResponse",
    "SupportReply",
    "SupportRequest",
    "TrainingEvent",
    "TrainingRegistration",
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
    "UsageDaily",
    "UsageRecord",
    "User",
]
