"""The controller against a real database, the fake scheduler of the compute tests and a fake prober:
a replica submitted as a job of the project, through pending, starting and ready into the gateway
model's replicas; a crash and failed health checks replaced; scale and delete drain first."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from jaif.compute.models import Job, JobState
from jaif.compute.scheduler import JobStatus
from jaif.config import DeploymentSettings
from jaif.db.base import utcnow
from jaif.deployments import service
from jaif.deployments.controller import Controller
from jaif.deployments.models import Deployment
from jaif.deployments.service import Load
from jaif.inference.models import Model
from tests.integration.compute.conftest import grant


@dataclass
class FakeProber:
    ok: bool = True
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, url: str, *, key: str | None) -> bool:
        self.asked.append((url, key))
        return self.ok


@pytest.fixture
def prober() -> FakeProber:
    return FakeProber()


@pytest.fixture
def controller(session, compute, prober) -> Controller:
    settings = DeploymentSettings(drain_s=0, health_failures=2, health_interval_s=10, restart_backoff_s=0,
                                  python="/opt/venv/bin/python")
    clock = Clock()
    return Controller(lambda: nullcontext(session), compute, settings, prober, clock=clock)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def deployment(session, world, compute) -> Deployment:
    lab = world.project()
    grant(session, lab, partition="gpu")
    return service.create_deployment(
        session=session, compute=compute, name="chat", model="smollm2-135m-instruct", engine="llama-cpp",
        partition="gpu", project=lab.name, gpus_per_replica=1, min_replicas=1, max_replicas=2, walltime_minutes=30,
        aliases=["chat-latest"],
    )


def states(session, name="chat"):
    d = service.get_deployment(session=session, name=name)
    return [(r.state, r.job_id) for r in d.replicas]


def urls(session, deployment):
    session.expire_all()
    return sorted(r.url for r in session.get(Model, deployment.model_id).replicas)


def listen(scheduler, job_id: str, workdir: str, port: int, *, node: str = "gpu-node-7") -> None:
    """The job runs on gpu-node-7 (the scheduler's names for it) and its replica names ``node``."""
    scheduler.states[job_id] = JobStatus(job_id, JobState.running, hosts=("gpu7", "gpu-node-7", "10.0.0.7"))
    (Path(workdir) / "endpoint").write_text(f"{node} {port}\n")


def test_a_replica_goes_from_submitted_to_serving(session, controller, scheduler, prober, deployment):
    assert controller.tick() is False
    assert states(session) == [("pending", "100")]
    request = scheduler.submitted[0]
    assert (request.account, request.partition, request.gpus_per_node, request.time_limit_min) == (
        deployment.project.name, "gpu", 1, 30)
    script = request.script.read_text()
    assert "-m llama_cpp.server" in script and "--model_alias chat --host 0.0.0.0" in script
    key = session.get(Model, deployment.model_id).upstream_key
    assert key and request.environment["JAIF_REPLICA_KEY"] == key and key not in script
    job = session.query(Job).filter_by(job_id="100").one()
    assert job.project_id == deployment.project_id  # the project's job: its allocation pays
    # queued: Slurm's reason shows
    controller.tick()
    replica = service.get_deployment(session=session, name="chat").replicas[0]
    assert (replica.state, replica.reason) == ("pending", "Priority")
    # runs, but has not said where it listens: starting, not probed
    scheduler.states["100"] = JobStatus("100", JobState.running)
    controller.tick()
    assert states(session) == [("starting", "100")] and prober.asked == []
    listen(scheduler, "100", request.workdir, 8123)
    prober.ok = False
    assert controller.tick() is False  # listens, but not ready yet
    assert states(session) == [("starting", "100")]
    assert prober.asked == [("http://gpu-node-7:8123/v1/models", key)]
    prober.ok = True
    assert controller.tick() is True
    assert states(session) == [("ready", "100")]
    assert urls(session, deployment) == ["http://gpu-node-7:8123/v1"]
    assert scheduler.cancelled == [] and len(scheduler.submitted) == 1


def test_a_replica_naming_a_node_its_job_does_not_hold_is_not_routed(session, controller, scheduler, prober,
                                                                       deployment, caplog):
    controller.tick()
    request = scheduler.submitted[0]
    listen(scheduler, "100", request.workdir, 8123, node="db.internal")  # not its node: never asked
    with caplog.at_level(logging.WARNING, logger="jaif.deployments.controller"):
        for _ in range(3):
            assert controller.tick() is False
    replica = service.get_deployment(session=session, name="chat").replicas[0]
    assert (replica.state, replica.node, replica.port, prober.asked) == ("starting", None, None, [])
    assert replica.reason == ("its endpoint names node 'db.internal', not one of its job's nodes "
                              "(gpu7, gpu-node-7, 10.0.0.7): not routed")
    assert "not one of its job's nodes" in caplog.text
    assert session.query(Job).filter_by(job_id="100").one().hosts == "gpu7 gpu-node-7 10.0.0.7"
    listen(scheduler, "100", request.workdir, 8123, node="10.0.0.7")  # its node's address: routed
    assert controller.tick() is True
    assert urls(session, deployment) == ["http://10.0.0.7:8123/v1"]


def ready_replica(session, controller, scheduler, job_id: str, port: int) -> None:
    controller.tick()
    request = scheduler.submitted[int(job_id) - 100]
    listen(scheduler, job_id, request.workdir, port)
    controller.tick()  # starting
    controller.tick()  # ready


def test_a_crash_is_replaced_and_leaves_the_routing(session, controller, scheduler, deployment):
    ready_replica(session, controller, scheduler, "100", 8100)
    assert urls(session, deployment) == ["http://gpu-node-7:8100/v1"]
    scheduler.states["100"] = JobStatus("100", JobState.failed, exit_code=137)
    assert controller.tick() is True
    d = service.get_deployment(session=session, name="chat")
    assert [(r.state, r.job_id) for r in d.replicas] == [("failed", "100"), ("pending", "101")]
    assert d.replicas[0].reason == "its job ended: failed, exit code 137"
    assert urls(session, deployment) == []
    assert scheduler.cancelled == []


def test_failed_health_checks_cancel_and_replace_a_ready_replica(session, controller, scheduler, prober, deployment):
    ready_replica(session, controller, scheduler, "100", 8100)
    prober.ok = False
    asked = len(prober.asked)
    controller.tick()
    assert states(session) == [("ready", "100")]  # one failure: kept (health_failures=2)
    controller.tick()  # not checked again within health_interval_s (a busy engine may be slow to answer)
    assert len(prober.asked) == asked + 1 and states(session) == [("ready", "100")]
    controller.clock.now += 10
    assert controller.tick() is True
    assert states(session) == [("failed", "100"), ("pending", "101")]
    assert scheduler.cancelled == ["100"] and urls(session, deployment) == []


def test_scale_up_then_down_drains_then_cancels(session, controller, scheduler, deployment):
    controller.settings.scale_down_window_s = 0  # no load: down at once
    ready_replica(session, controller, scheduler, "100", 8100)
    service.scale_deployment(session=session, name="chat", min_replicas=2)
    ready_replica(session, controller, scheduler, "101", 8101)
    assert urls(session, deployment) == ["http://gpu-node-7:8100/v1", "http://gpu-node-7:8101/v1"]
    service.scale_deployment(session=session, name="chat", min_replicas=1)
    controller.load_of = lambda s: Load(inflight={"http://gpu-node-7:8101/v1": 1})
    assert controller.tick() is True  # the newest drains: out of the routing, not cancelled yet
    assert states(session) == [("ready", "100"), ("draining", "101")]
    assert urls(session, deployment) == ["http://gpu-node-7:8100/v1"] and scheduler.cancelled == []
    controller.tick()  # a request still in flight on it
    assert scheduler.cancelled == []
    controller.load_of = lambda s: Load()
    controller.tick()
    assert states(session) == [("ready", "100"), ("ended", "101")] and scheduler.cancelled == ["101"]


def test_the_autoscaler_adds_a_replica_under_load_and_takes_it_away_after_its_window(session, controller, scheduler,
                                                                                    deployment, caplog):
    caplog.set_level(logging.INFO, logger="jaif.deployments")
    controller.settings.scale_down_window_s = 60
    ready_replica(session, controller, scheduler, "100", 8100)
    load = {"http://gpu-node-7:8100/v1": 9}  # target_inflight 4 (the default): 9 in flight wants 3, max is 2
    controller.load_of = lambda s: Load(inflight=load)
    controller.clock.now += 11  # the idle samples are out of the 10 s window
    controller.tick()
    assert [s for s, _ in states(session)] == ["ready", "pending"]
    assert "deployment chat: scale up 1 -> 2: 9.0 requests in flight on average over 10 s" in caplog.text
    ready_replica(session, controller, scheduler, "101", 8101)
    assert urls(session, deployment) == ["http://gpu-node-7:8100/v1", "http://gpu-node-7:8101/v1"]
    load.clear()  # the load is gone: kept for the scale-down window, then one drains
    for _ in range(3):
        controller.clock.now += 20
        controller.tick()
    assert [s for s, _ in states(session)] == ["ready", "ready"]
    controller.clock.now += 60
    controller.tick()
    assert [s for s, _ in states(session)] == ["ready", "draining"]
    assert "deployment chat: scale down 2 -> 1" in caplog.text


def test_walltime_handover_a_successor_first_then_the_old_one_drains(session, controller, scheduler, deployment):
    ready_replica(session, controller, scheduler, "100", 8100)
    # 30 minutes of time limit; started 25 minutes ago: within the 10 minutes of handover
    started = utcnow() - timedelta(minutes=25)
    scheduler.states["100"] = JobStatus("100", JobState.running, started_at=started)
    controller.tick()
    assert states(session) == [("ready", "100"), ("pending", "101")]  # the old one serves on
    assert urls(session, deployment) == ["http://gpu-node-7:8100/v1"]
    listen(scheduler, "101", scheduler.submitted[1].workdir, 8101)
    controller.tick()  # starting
    assert controller.tick() is True  # the successor is ready, the old one drains in the same tick
    assert states(session) == [("draining", "100"), ("ready", "101")]
    assert urls(session, deployment) == ["http://gpu-node-7:8101/v1"]
    replica = service.get_deployment(session=session, name="chat").replicas[0]
    assert replica.reason == "walltime handover: its successor is ready"


def test_delete_drains_every_replica_then_removes_the_deployment_and_its_model(session, controller, scheduler,
                                                                               deployment):
    ready_replica(session, controller, scheduler, "100", 8100)
    model_id = deployment.model_id
    left = service.delete_deployment(session=session, name="chat")
    assert left is not None and left.state == "deleting"
    with pytest.raises(Exception, match="is being deleted"):
        service.scale_deployment(session=session, name="chat", min_replicas=2)
    controller.tick()
    assert states(session) == [("draining", "100")] and urls(session, deployment) == []
    # drained (drain_s=0, nothing in flight): cancelled; no live replica is left, so the deployment and
    # its model go
    assert controller.tick() is True
    assert scheduler.cancelled == ["100"]
    session.expire_all()
    assert session.get(Model, model_id) is None
    assert service.list_deployments(session=session) == []


def test_replicas_that_fail_before_ready_are_resubmitted_after_a_doubling_backoff(session, controller, scheduler,
                                                                                 deployment):
    controller.settings.restart_backoff_s = 60

    def crash(job_id: str) -> None:
        scheduler.states[job_id] = JobStatus(job_id, JobState.failed, exit_code=126)
        controller.tick()

    def ended_ago(seconds: float) -> None:
        last = service.get_deployment(session=session, name="chat").replicas[-1]
        last.ended_at = utcnow() - timedelta(seconds=seconds)

    controller.tick()
    crash("100")
    assert states(session) == [("failed", "100")]  # not resubmitted at once: waits 60 s
    ended_ago(59)
    controller.tick()
    assert len(scheduler.submitted) == 1
    ended_ago(61)
    controller.tick()
    assert states(session) == [("failed", "100"), ("pending", "101")]
    crash("101")
    ended_ago(61)
    controller.tick()
    assert len(scheduler.submitted) == 2  # two in a row: waits 120 s
    ended_ago(121)
    controller.tick()
    assert len(scheduler.submitted) == 3


def test_a_replica_that_served_and_crashed_is_replaced_at_once(session, controller, scheduler, deployment):
    controller.settings.restart_backoff_s = 60
    ready_replica(session, controller, scheduler, "100", 8100)
    scheduler.states["100"] = JobStatus("100", JobState.failed, exit_code=139)
    controller.tick()
    assert states(session) == [("failed", "100"), ("pending", "101")]


def test_a_refused_submission_is_said_and_tried_again(session, controller, scheduler, world, compute, caplog):
    lab = world.project()  # no allocation: the project cannot pay
    service.create_deployment(session=session, compute=compute, name="broke", model="smollm2-135m-instruct",
                              engine="llama-cpp", partition="gpu", project=lab.name)
    controller.tick()
    assert states(session, "broke") == [] and scheduler.submitted == []
    assert "deployment broke: could not submit a replica" in caplog.text
    grant(session, lab, partition="gpu")
    controller.tick()
    assert [s for s, _ in states(session, "broke")] == ["pending"]


def test_the_gateway_knows_a_deployment_before_a_replica_is_ready_and_forgets_it_when_deleted(
        session, factory, deployment, world, compute):
    from jaif.inference.registry import ModelRegistry
    from jaif.inference.service import add_model

    add_model(session=session, name="empty-model", upstreams=[], deployed=True)  # no deployment: not served
    session.flush()
    registry = ModelRegistry(factory, lambda url, **kw: None, cooldown_s=1, builtin=False,
                             standing=service.served_models)
    registry.load()
    assert registry.resolve("chat").replicas.replicas == []  # its requests are held for a replica, not 404
    assert registry.resolve("chat").deployment["state"] == "cold"  # no replica submitted yet
    assert registry.resolve("chat-latest").name == "chat"
    assert "empty-model" not in registry.models
    service.delete_deployment(session=session, name="chat")
    registry.load()
    assert "chat" not in registry.models


def test_min_zero_starts_cold_a_held_request_starts_a_replica_and_idle_scales_to_zero(
        session, controller, scheduler, deployment, caplog):
    caplog.set_level(logging.INFO, logger="jaif.deployments")
    service.scale_deployment(session=session, name="chat", min_replicas=0)
    deployment.idle_minutes = 0.5
    controller.tick()
    assert states(session) == [] and scheduler.submitted == []  # cold: nothing runs until a request comes
    assert service.status(deployment, utcnow()).state == "cold"
    now = utcnow().timestamp()
    controller.load_of = lambda s: Load(held={"chat": 1}, last={"chat": now})
    controller.tick()
    assert states(session) == [("pending", "100")]
    assert "deployment chat: scale up 0 -> 1: 1 request(s) waiting" in caplog.text
    assert service.status(deployment, utcnow()).state == "starting"
    ready_replica(session, controller, scheduler, "100", 8100)
    assert states(session) == [("ready", "100")] and service.status(deployment, utcnow()).state == "ready"
    assert deployment.last_request_at is not None and abs(deployment.last_request_at.timestamp() - now) < 1
    # the gateways' reports are gone (restarted): what the database keeps counts. 20 s without a request:
    # not idle for 30 s yet
    controller.load_of = lambda s: Load()
    deployment.last_request_at = utcnow() - timedelta(seconds=20)
    controller.tick()
    assert states(session) == [("ready", "100")]
    deployment.last_request_at = utcnow() - timedelta(seconds=40)
    controller.tick()
    assert states(session) == [("draining", "100")] and urls(session, deployment) == []
    assert "deployment chat: scale to zero 1 -> 0: no request for 40" in caplog.text
    controller.tick()
    assert states(session) == [("ended", "100")] and scheduler.cancelled == ["100"]
    shown = service.deployment_out(session, service.get_deployment(session=session, name="chat"))
    assert shown.status.state == "cold" and shown.status.estimated_ready_s is not None
    kinds = [(e.kind, e.message.split(":")[0]) for e in shown.events]
    assert ("scale", "scale to zero 1 -> 0") in kinds and ("scale", "scale up 0 -> 1") in kinds
    assert any(k == "replica" and "ready -> draining" in m for k, m in kinds)


def test_the_load_is_the_sum_of_every_gateways_fresh_report(session):
    service.report_load(session, instance="a",
                        load={"chat": {"inflight": {"http://n:1/v1": 2}, "held": 1, "last": 10.0}})
    service.report_load(session, instance="b", load={"chat": {"inflight": {"http://n:1/v1": 3, "http://n:2/v1": 1},
                                                              "held": 0, "last": 20.0}})
    service.report_load(session, instance="dead", load={"chat": {"inflight": {"http://n:1/v1": 50}, "held": 9,
                                                                 "last": 30.0}})
    from jaif.deployments.models import GatewayLoad
    session.get(GatewayLoad, "dead").reported_at = utcnow() - timedelta(seconds=60)
    session.flush()
    load = service.read_load(session, fresh_s=5)
    assert load.inflight == {"http://n:1/v1": 5, "http://n:2/v1": 1} and load.held == {"chat": 1}
    assert load.last == {"chat": 30.0} and load.instances == 2  # a dead process's last request still counts
    service.report_load(session, instance="a", load={})  # replaced, not added
    service.forget_load(session, instance="b")
    assert service.read_load(session, fresh_s=5).inflight == {}
    assert service.read_load(session, fresh_s=5, keep_s=30).last == {}  # and after a day, deleted


def test_a_replica_submitted_for_a_deployment_whose_replicas_were_not_loaded_is_listed_once(
        session, compute, deployment):
    session.expire_all()
    fresh = session.get(Deployment, deployment.id)  # its replicas not loaded yet
    service.submit_replica(session=session, compute=compute, deployment=fresh, python="/opt/venv/bin/python")
    assert len(fresh.replicas) == 1
