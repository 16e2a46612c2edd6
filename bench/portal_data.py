"""A realistic front door in PostgreSQL, loaded fast with COPY: the data set of bench/portal.py.

    .venv/bin/python bench/portal_data.py [--database-url URL] [--scale 1.0]

Creates the database named in the URL afresh (dropping one of that name), migrates it with jaif's own
migrations, seeds the three EuroHPC-style calls with jaif's own seed, then loads, at scale 1.0:

- 1,000 organisations (sector and country mixed), 20,000 users (250 reviewers, 20 operators);
- 10,000 projects, each made by an allocated application, with a PI and 0-6 members (about 35,000
  memberships) and 1-4 API keys (about 25,000);
- 100,000 applications to the three calls in every state (25,000 allocated: 10,000 new ones that made
  the projects, 15,000 renewals and top-ups), each with its transition log (about 330,000 events) and,
  in the reviewing calls, technical and peer reviews; allocations (GPU-hours on the booster partition
  and inference tokens) for the allocated ones, active or expired by their dates;
- 1,000,000 usage records over the last 90 days, spread Zipf-like over 6,000 projects (the busiest has
  about 4 % of them), their keys and six models; projects' tokens_spent and token quotas match them;
- 100,000 accounting records of finished Slurm jobs over the same 90 days (the GPU-hours chart).

Three accounts sign in with a known password: ``bench-user@example.org`` (a user in 4 projects: PI of the
busiest one, member of three others, with 6 applications of their own), ``bench-reviewer@example.org`` (one
of the 250 reviewers, with their share of the reviews) and ``bench-operator@example.org``.
Every other account has no password (single sign-on only). Deterministic (seeded) for a given scale.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jaif.db.models  # noqa: E402,F401  (every table known to the metadata)
from jaif.access.secrets import hash_password  # noqa: E402
from jaif.calls.seed import seed_calls  # noqa: E402
from jaif.db.base import Base  # noqa: E402
from jaif.db.engine import make_engine, make_session_factory, transaction  # noqa: E402
from jaif.db.migrate import upgrade  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/jaif_portal_bench"
USER_EMAIL, OPERATOR_EMAIL, PASSWORD = "bench-user@example.org", "bench-operator@example.org", "bench-portal-pw-1"
REVIEWER_EMAIL = "bench-reviewer@example.org"
PARTITION = "booster"
BULK = {"usage_records", "application_events", "compute_job_records"}  # loaded without indexes, then indexed
MODELS = [("llama-3.3-70b-instruct", 40), ("mistral-small-24b", 20), ("qwen2.5-coder-32b", 15),
          ("teuken-7b-instruct", 10), ("bge-m3", 10), ("all-minilm-l6-v2", 5)]
EMBEDDING_MODELS = {"bge-m3", "all-minilm-l6-v2"}
COUNTRIES = ["DE"] * 8 + ["FR"] * 4 + ["IT"] * 3 + ["ES"] * 3 + ["NL", "NL", "BE", "AT", "PL", "PL", "SE", "FI",
             "DK", "CZ", "PT", "IE", "GR", "HU", "NO", "CH", "IS", "IL", "TR", "RS"]
SECTORS = ["academia"] * 10 + ["startup"] * 3 + ["sme"] * 3 + ["industry"] * 2 + ["public"] * 2
DOMAINS = ["language models", "computer vision", "climate", "materials", "life sciences", "physics",
           "robotics", "health", "finance", "public administration", "speech", "chemistry"]
WORDS = ["atlas", "borealis", "cobalt", "delta", "ember", "fjord", "granite", "helix", "ion", "juniper", "kelvin",
         "lumen", "meridian", "nova", "orbit", "pulsar", "quartz", "rhine", "sigma", "tundra", "umbra", "vector",
         "willow", "xenon", "yarrow", "zephyr"]
LOREM = ("We train and evaluate foundation models for European languages and scientific data on the "
         "JUPITER booster, with open weights, reproducible pipelines and a careful assessment of energy use. ")


@dataclass
class Sizes:
    orgs: int = 1_000
    users: int = 20_000
    projects: int = 10_000
    applications: int = 100_000
    renewals: int = 15_000
    usage: int = 1_000_000
    usage_projects: int = 6_000
    jobs: int = 100_000

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        base = cls()
        return cls(**{k: max(10, int(v * scale)) for k, v in base.__dict__.items()})


@dataclass
class Loaded:
    """What the benchmark needs to know about the data it loaded."""

    sizes: Sizes
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    user_projects: list[str] = field(default_factory=list)
    busiest_project: str = ""
    call_slugs: list[str] = field(default_factory=list)


def admin_url(database_url: str) -> tuple[str, str]:
    """A libpq URL of the server's ``postgres`` database, and the name of the bench database."""
    url = make_url(database_url)
    if not url.database:
        raise SystemExit("the database URL must name a database, e.g. " + DEFAULT_URL)
    admin = url.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), url.database


def libpq(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate(database_url: str) -> None:
    admin, name = admin_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


def copy(conn: psycopg.Connection, table: str, columns: list[str], rows) -> int:
    """COPY ``rows`` into ``table``; first checks that every column the database needs is given."""
    meta = Base.metadata.tables[table]
    needed = {c.name for c in meta.columns if not c.nullable and c.server_default is None}
    missing = needed - set(columns)
    unknown = set(columns) - {c.name for c in meta.columns}
    if missing or unknown:
        raise SystemExit(f"bench/portal_data.py is out of date for {table}: missing {missing}, unknown {unknown}")
    n = 0
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(stmt) as out:
        for row in rows:
            out.write_row(row)
            n += 1
    return n


class Unindexed:
    """Drop a table's indexes and constraints for a bulk COPY and build them again afterwards, each in one
    pass (much faster than keeping a million random keys in order row by row). Only for tables that no
    foreign key points at."""

    def __init__(self, conn: psycopg.Connection, table: str) -> None:
        self.conn, self.table = conn, table

    def __enter__(self) -> None:
        conn, table = self.conn, self.table
        self.constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype IN ('p', 'u', 'f') ORDER BY contype DESC", (table,)).fetchall()
        self.indexes = conn.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = "
            "%s::regclass AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)",
            (table, table)).fetchall()
        for name, _ in self.indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for name, _ in reversed(self.constraints):
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table),
                                                                              sql.Identifier(name)))

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            return
        self.conn.execute("SET maintenance_work_mem = '256MB'")
        for name, definition in self.constraints:
            escaped = definition.replace("{", "{{").replace("}", "}}")
            self.conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + escaped)
                              .format(sql.Identifier(self.table), sql.Identifier(name)))
        for _, definition in self.indexes:
            self.conn.execute(definition)


def zipf_weights(n: int, s: float = 0.8) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


class Generator:
    def __init__(self, sizes: Sizes, now: datetime, seed: int = 7) -> None:
        self.s = sizes
        self.now = now
        self.rng = random.Random(seed)
        self.id = Ids(self.rng)
        self.orgs: list[tuple[str, str]] = []  # (id, sector)
        self.users: list[str] = []
        self.user_org: dict[str, str] = {}
        self.org_users: dict[str, list[str]] = {}
        self.reviewers: list[str] = []
        self.operators: list[str] = []
        self.projects: list[dict] = []
        self.project_keys: dict[str, list[str]] = {}

    # --- people ------------------------------------------------------------------------------------
    def organisations(self):
        rng = self.rng
        for i in range(self.s.orgs):
            oid, sector = self.id(), rng.choice(SECTORS)
            self.orgs.append((oid, sector))
            self.org_users[oid] = []
            kind = {"academia": "University", "startup": "AI", "sme": "GmbH", "industry": "AG",
                    "public": "Agency"}[sector]
            created = self.now - timedelta(days=400 + rng.random() * 300)
            yield (oid, f"{WORDS[i % 26].title()} {kind} {i:04d}", sector, rng.choice(COUNTRIES), created)

    def accounts(self, pw_hash: str):
        rng = self.rng
        weights = zipf_weights(len(self.orgs), 0.6)
        org_ids = [o[0] for o in self.orgs]
        chosen = rng.choices(org_ids, weights, k=self.s.users)
        for i in range(self.s.users):
            uid, org = self.id(), chosen[i]
            role = "operator" if i < 20 else "reviewer" if i < 270 else "user"
            (self.operators if role == "operator" else self.reviewers if role == "reviewer" else self.users).append(uid)
            self.user_org[uid] = org
            if role == "user":
                self.org_users[org].append(uid)
            created = self.now - timedelta(days=rng.random() * 500)
            if i == 20:  # the first reviewer signs in for the benchmark (about 200 reviews, like every reviewer)
                yield (uid, REVIEWER_EMAIL, "Bench Reviewer", pw_hash, role, True, created, org, created)
                continue
            yield (uid, f"user{i:05d}@{org[:8]}.example.org", f"User {i:05d}", None, role, True, created, org, created)
        # The two accounts the benchmark signs in as.
        self.bench_user, self.bench_operator = self.id(), self.id()
        org = org_ids[0]
        self.user_org[self.bench_user] = org
        long_ago = self.now - timedelta(days=600)
        yield (self.bench_user, USER_EMAIL, "Bench User", pw_hash, "user", True, long_ago, org, long_ago)
        yield (self.bench_operator, OPERATOR_EMAIL, "Bench Operator", pw_hash, "operator", True, long_ago, org,
               long_ago)

    # --- projects ----------------------------------------------------------------------------------
    def plan_projects(self, calls: dict[str, dict]) -> None:
        rng = self.rng
        for i in range(self.s.projects):
            pi = rng.choice(self.users)
            call = rng.choices(["playground", "fast-lane", "large-scale"], [55, 35, 10])[0]
            allocated = self.now - timedelta(days=rng.random() ** 1.5 * 365)
            self.projects.append(dict(id=self.id(), name=f"{WORDS[i % 26]}-{i:05d}", org=self.user_org[pi], pi=pi,
                                      call=call, allocated_at=allocated))
        # The bench user: PI of project 0 (it gets the most usage), member of three more.
        self.projects[0]["pi"] = self.bench_user
        self.projects[0]["org"] = self.user_org[self.bench_user]
        self.bench_projects = [self.projects[0]["id"]] + [p["id"] for p in rng.sample(self.projects[1:], 3)]

    def project_rows(self):
        rng = self.rng
        for p in self.projects:
            yield (p["id"], p["name"], p["org"], f"Project {p['name']}: " + LOREM[: rng.randint(40, 200)], True,
                   None, 0, 0, 0, None, p["allocated_at"])

    def member_rows(self):
        rng = self.rng
        extra = set(self.bench_projects[1:])
        for p in self.projects:
            members = {p["pi"]: "pi"}
            colleagues = self.org_users.get(p["org"]) or self.users
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4, 6))):
                members.setdefault(rng.choice(colleagues if rng.random() < 0.7 else self.users), "member")
            if p["id"] in extra:
                members.setdefault(self.bench_user, "member")
            p["members"] = list(members)
            for uid, role in members.items():
                yield (self.id(), p["id"], uid, role, p["allocated_at"] + timedelta(minutes=rng.randint(0, 9000)))

    def key_rows(self):
        rng = self.rng
        for p in self.projects:
            keys = []
            for k in range(rng.choice((1, 1, 2, 2, 3, 4))):
                kid = self.id()
                keys.append(kid)
                revoked = self.now - timedelta(days=rng.random() * 30) if rng.random() < 0.1 else None
                yield (kid, p["id"], rng.choice(p["members"]), f"key {k + 1}", f"{rng.getrandbits(256):064x}",
                       f"jaif-{len(self.project_keys):06d}k{k}", None, None, None, revoked,
                       None, p["allocated_at"] + timedelta(hours=rng.randint(1, 200)))
            self.project_keys[p["id"]] = keys

    # --- applications ------------------------------------------------------------------------------
    def application_rows(self, calls: dict[str, dict]):
        """Applications, and through ``self.pending`` their events, reviews and allocations."""
        rng = self.rng
        self.events: list[tuple] = []
        self.reviews: list[tuple] = []
        self.allocations: list[tuple] = []
        plans = [("new", p, "allocated") for p in self.projects]
        for _ in range(self.s.renewals):
            plans.append((rng.choice(("renewal", "top_up")), rng.choice(self.projects), "allocated"))
        others = self.s.applications - len(plans)
        for _i in range(max(0, others)):
            plans.append(("new", None, None))
        for n, (kind, project, state) in enumerate(plans):
            yield self._application(calls, kind, project, state, own=n >= len(plans) - 6)

    def _application(self, calls, kind, project, state, *, own: bool):
        rng = self.rng
        aid = self.id()
        if project is not None:
            call_slug = project["call"] if kind == "new" else rng.choices(["fast-lane", "large-scale"], [80, 20])[0]
            applicant, org = project["pi"], project["org"]
        else:
            call_slug = rng.choices(["playground", "fast-lane", "large-scale"], [45, 40, 15])[0]
            applicant = self.bench_user if own else rng.choice(self.users)
            org = self.user_org[applicant]
        call = calls[call_slug]
        if state is None:
            state = self._state(call_slug)
        gpu = {"playground": rng.choice((500, 1000, 2500, 5000)), "fast-lane": rng.choice((5000, 10000, 25000, 50000)),
               "large-scale": rng.choice((60000, 100000, 250000, 500000))}[call_slug]
        tokens = rng.choice((0, 1_000_000, 5_000_000, 10_000_000)) if call_slug == "playground" else \
            rng.choice((0, 10_000_000, 50_000_000, 100_000_000))
        months = rng.choice(call["durations"])
        if project is not None and kind == "new":
            allocated_at = project["allocated_at"]
        elif project is not None:
            allocated_at = max(project["allocated_at"], self.now - timedelta(days=rng.random() ** 1.2 * 300))
        else:
            allocated_at = None
        # When it was made and submitted: before its allocation, or over the last year.
        ttas = {"playground": rng.uniform(0.001, 3), "fast-lane": rng.uniform(1, 10),
                "large-scale": rng.uniform(15, 60)}
        if allocated_at is not None:
            submitted = allocated_at - timedelta(days=ttas[call_slug])
        else:
            submitted = self.now - timedelta(days=rng.random() ** 1.3 * 365)
        created = submitted - timedelta(hours=rng.uniform(0.5, 240))
        path = self._path(state, call_slug)
        times = self._times(path, created, submitted, allocated_at)
        decided = next((t for s, t in zip(path, times, strict=True) if s in ("accepted", "rejected")), None)
        operator = rng.choice(self.operators)
        for (frm, to), when in zip(zip([None, *path[:-1]], path, strict=True), times, strict=True):
            actor = applicant if to in ("draft", "submitted", "withdrawn") else (
                None if call_slug == "playground" else operator)
            self.events.append((self.id(), aid, frm, to, actor, "", when))
        if call_slug != "playground" and any(s in path for s in ("technical_review",)):
            self._reviews(aid, org, path, times, operator)
        if state == "allocated":
            self._allocations(aid, project, gpu, tokens, months, allocated_at, operator)
        title = f"{rng.choice(DOMAINS).title()} with {rng.choice(WORDS).title()}: {kind.replace('_', '-')} {aid[:6]}"
        team = json.dumps([f"colleague{rng.randint(0, 99999)}@example.org" for _ in range(rng.randint(0, 4))])
        return (aid, call["id"], applicant, org, None, kind, project["id"] if project else None,
                project["name"] if project else "", title, LOREM * rng.randint(1, 4), rng.choice(DOMAINS), team,
                json.dumps({PARTITION: float(gpu)}), tokens, months, "Public web text and our own corpora.",
                rng.random() < 0.15, rng.choice(("minimal", "minimal", "limited", "high")), "",
                state, "Thank you for the clear proposal." if decided else "",
                created, times[-1], submitted if "submitted" in path else None, decided,
                allocated_at if state == "allocated" else None)

    def _state(self, call: str) -> str:
        states = {
            "playground": (["draft", "submitted", "rejected", "withdrawn"], [45, 5, 25, 25]),
            "fast-lane": (["draft", "submitted", "technical_review", "accepted", "rejected", "withdrawn"],
                          [30, 12, 15, 3, 28, 12]),
            "large-scale": (["draft", "submitted", "technical_review", "peer_review", "accepted", "rejected",
                             "withdrawn"], [25, 10, 12, 15, 3, 27, 8]),
        }[call]
        return self.rng.choices(*states)[0]

    def _path(self, state: str, call: str) -> list[str]:
        review = ["technical_review"] + (["peer_review"] if call == "large-scale" else [])
        if call == "playground":
            review = []
        if state == "draft":
            return ["draft"]
        if state == "withdrawn":
            return ["draft", "withdrawn"] if self.rng.random() < 0.5 else ["draft", "submitted", "withdrawn"]
        upto = {"submitted": ["submitted"], "technical_review": ["submitted", "technical_review"],
                "peer_review": ["submitted", "technical_review", "peer_review"]}
        if state in upto:
            return ["draft", *upto[state]]
        if state == "rejected":
            return ["draft", "submitted", *review[: self.rng.randint(0, len(review))], "rejected"]
        if state == "accepted":
            return ["draft", "submitted", *review, "accepted"]
        return ["draft", "submitted", *review, "accepted", "allocated"]

    def _times(self, path, created, submitted, allocated_at) -> list[datetime]:
        times = []
        end = allocated_at or min(self.now, submitted + timedelta(days=self.rng.uniform(1, 30)))
        steps = max(1, len(path) - 2)
        for n, state in enumerate(path):
            if state == "draft":
                times.append(created)
            elif state == "submitted":
                times.append(submitted)
            elif state == "allocated":
                times.append(allocated_at)
            elif n == len(path) - 1 and state in ("withdrawn", "rejected") and "submitted" not in path:
                times.append(created + timedelta(hours=self.rng.uniform(1, 200)))
            else:
                times.append(min(self.now, submitted + (end - submitted) * (n - 1) / steps))
        return [min(t, self.now) for t in times]

    def _reviews(self, aid, org, path, times, operator) -> None:
        rng = self.rng
        decided = path[-1] in ("accepted", "rejected", "allocated")
        stages = [("technical", 1)] + ([("peer", rng.randint(2, 3))] if "peer_review" in path else [])
        for stage, count in stages:
            started = times[path.index("technical_review" if stage == "technical" else "peer_review")]
            for reviewer in rng.sample(self.reviewers, count):
                done = decided or rng.random() < 0.4
                self.reviews.append((self.id(), aid, reviewer, stage, rng.randint(1, 5) if done else None,
                                     "Sound plan; the scaling runs are well argued." if done else "", operator,
                                     started, started + timedelta(days=rng.uniform(0.2, 5)) if done else None))

    def _allocations(self, aid, project, gpu, tokens, months, start, operator) -> None:
        rng = self.rng
        end = start + timedelta(days=30.4 * months)
        for resource, amount in (("gpu_hours", float(gpu)), ("tokens", float(tokens))):
            if amount <= 0:
                continue
            used_share = min(1.0, (self.now - start) / (end - start)) * rng.uniform(0.2, 1.1)
            used = float(int(amount * min(1.0, used_share)))
            status = "exhausted" if used >= amount else "expired" if end <= self.now else "active"
            if rng.random() < 0.01:
                status = "revoked"
            self.allocations.append((self.id(), project["id"], aid, resource, PARTITION if resource == "gpu_hours"
                                     else None, amount, used, start, end, status, operator, start,
                                     start + timedelta(days=3) if status == "revoked" else None))

    # --- usage ---------------------------------------------------------------------------------------
    def usage_rows(self):
        """1,000,000 records: projects Zipf-weighted (the bench user's first project the busiest)."""
        rng = self.rng
        others = min(len(self.projects) - 1, self.s.usage_projects - 1)
        active = [self.projects[0]] + rng.sample(self.projects[1:], others)
        self.busiest = active[0]["id"]
        weights = zipf_weights(len(active))
        cum, total = [], 0.0
        for w in weights:
            total += w
            cum.append(total)
        names = [m for m, _ in MODELS]
        mweights = [w for _, w in MODELS]
        span = 90 * 86400
        start = self.now - timedelta(seconds=span)
        import bisect

        projects = [p["id"] for p in active]
        keys = [self.project_keys[p] for p in projects]
        for _ in range(self.s.usage):
            i = bisect.bisect_left(cum, rng.random() * total)
            model = rng.choices(names, mweights)[0]
            embed = model in EMBEDDING_MODELS
            endpoint = "embeddings" if embed else ("completions" if rng.random() < 0.05 else "chat.completions")
            prompt = int(rng.lognormvariate(5.5, 1.1)) + 1
            completion = 0 if embed else int(rng.lognormvariate(5.0, 1.0)) + 1
            ok = rng.random() < 0.98
            stream = not embed and rng.random() < 0.6
            latency = rng.lognormvariate(6.5, 0.8) if not embed else rng.lognormvariate(3.5, 0.5)
            # A weekly and daily rhythm: fewer requests at night and at weekends.
            when = start + timedelta(seconds=rng.random() * span)
            if (when.hour < 7 or when.weekday() >= 5) and rng.random() < 0.5:
                when = when.replace(hour=rng.randint(8, 18))
            when = min(when, self.now)
            yield (self.id(), when, projects[i], rng.choice(keys[i]), endpoint, model,
                   None, stream, prompt if ok else 0, completion if ok else 0, (prompt + completion) if ok else 0,
                   "upstream", round(latency, 2), round(latency * 0.2, 2) if stream else None,
                   "ok" if ok else "error", 200 if ok else rng.choice((429, 502, 503)))

    def job_rows(self):
        rng = self.rng
        with_gpu = [p for p in self.projects if rng.random() < 0.5] or self.projects
        weights = zipf_weights(len(with_gpu), 0.7)
        chosen = rng.choices(with_gpu, weights, k=self.s.jobs)
        span = 90 * 86400
        for n, p in enumerate(chosen):
            nodes = rng.choice((1, 1, 1, 2, 4, 16))
            elapsed = rng.randint(60, 86400)
            ended = self.now - timedelta(seconds=rng.random() * span)
            started = ended - timedelta(seconds=elapsed)
            gpus = nodes * 4
            kwh = gpus * 0.68 * elapsed / 3600
            yield (self.id(), "jupiter", str(5_000_000 + n), p["id"], p["name"], f"u{rng.randint(0, 99999)}",
                   "train", PARTITION, rng.choice(("completed", "completed", "completed", "failed", "timeout")),
                   started - timedelta(seconds=rng.randint(0, 7200)), started, ended, elapsed, nodes, gpus,
                   gpus * elapsed / 3600, kwh, "model", kwh * 0.38, None, ended + timedelta(minutes=10))


def load(database_url: str = DEFAULT_URL, *, scale: float = 1.0, log=print) -> Loaded:
    started = time.perf_counter()
    sizes = Sizes.scaled(scale)
    now = datetime.now(UTC).replace(microsecond=0)
    recreate(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        seed_calls(session)  # jaif's own three calls
    engine.dispose()
    log(f"  database created and migrated, calls seeded ({time.perf_counter() - started:.1f} s)")
    gen = Generator(sizes, now)
    loaded = Loaded(sizes=sizes)
    with psycopg.connect(libpq(database_url)) as conn:
        calls = {slug: dict(id=cid, durations=json.loads(d) if isinstance(d, str) else d)
                 for cid, slug, d in conn.execute("SELECT id, slug, durations_months FROM access_calls")}
        loaded.call_slugs = sorted(calls)

        def step(table: str, columns: list[str], rows) -> None:
            t = time.perf_counter()
            if table in BULK:
                with Unindexed(conn, table):
                    loaded.counts[table] = copy(conn, table, columns, rows)
            else:
                loaded.counts[table] = copy(conn, table, columns, rows)
            log(f"  {table}: {loaded.counts[table]:,} rows in {time.perf_counter() - t:.1f} s")

        step("organisations", ["id", "name", "sector", "country", "created_at"], gen.organisations())
        step("users", ["id", "email", "name", "password_hash", "role", "is_active", "email_verified_at",
                       "organisation_id", "created_at"], gen.accounts(hash_password(PASSWORD)))
        gen.plan_projects(calls)
        step("projects", ["id", "name", "organisation_id", "description", "is_active", "token_quota", "tokens_spent",
                          "tokens_leased", "tokens_attributed", "allowed_models", "created_at"], gen.project_rows())
        step("project_members", ["id", "project_id", "user_id", "role", "created_at"], gen.member_rows())
        step("api_keys", ["id", "project_id", "user_id", "name", "key_hash", "prefix", "rpm_limit", "tpm_limit",
                          "expires_at", "revoked_at", "last_used_at", "created_at"], gen.key_rows())
        step("applications", ["id", "call_id", "applicant_id", "organisation_id", "organisation_proposal", "kind",
                              "project_id", "project_name", "title", "abstract", "domain", "team",
                              "requested_gpu_hours", "requested_tokens", "duration_months", "datasets",
                              "personal_data", "ai_act_risk", "ai_act_notes", "state", "decision_comment",
                              "created_at", "updated_at", "submitted_at", "decided_at", "allocated_at"],
             gen.application_rows(calls))
        step("application_events", ["id", "application_id", "from_state", "to_state", "actor_id", "note",
                                    "created_at"], gen.events)
        step("reviews", ["id", "application_id", "reviewer_id", "stage", "score", "comment", "assigned_by_id",
                         "assigned_at", "submitted_at"], gen.reviews)
        step("allocations", ["id", "project_id", "application_id", "resource", "partition", "amount", "used",
                             "starts_at", "ends_at", "status", "created_by_id", "created_at", "revoked_at"],
             gen.allocations)
        step("usage_records", ["id", "created_at", "project_id", "api_key_id", "endpoint", "model",
                               "replica", "stream", "prompt_tokens", "completion_tokens", "total_tokens",
                               "usage_source", "latency_ms", "ttft_ms", "status", "status_code"], gen.usage_rows())
        step("compute_job_records", ["id", "cluster", "job_id", "project_id", "account", "user", "name", "partition",
                                     "state", "submitted_at", "started_at", "ended_at", "elapsed_s", "nodes", "gpus",
                                     "gpu_hours", "energy_kwh", "energy_source", "co2_kg", "allocation_id",
                                     "imported_at"], gen.job_rows())
        t = time.perf_counter()
        _books(conn, now)
        conn.commit()
        log(f"  token books (spent, quota) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"  VACUUM ANALYZE in {time.perf_counter() - t:.1f} s")
    loaded.user_projects = gen.bench_projects
    loaded.busiest_project = gen.busiest
    loaded.seconds = time.perf_counter() - started
    return loaded


def _books(conn: psycopg.Connection, now: datetime) -> None:
    """Projects' spend is the sum of their usage; token allocations carry it oldest first (as
    allocations/token_quota.py would have); the quota is spend plus what running token allocations have left."""
    conn.execute(
        "UPDATE projects p SET tokens_spent = u.spent, tokens_attributed = u.spent "
        "FROM (SELECT project_id, sum(total_tokens) AS spent FROM usage_records GROUP BY project_id) u "
        "WHERE p.id = u.project_id"
    )
    conn.execute(
        "UPDATE projects p SET token_quota = p.tokens_spent + coalesce(a.left_over, 0) "
        "FROM (SELECT project_id, sum(CASE WHEN status = 'active' AND starts_at <= %(now)s AND ends_at > %(now)s "
        "      THEN greatest(amount - used, 0) ELSE 0 END)::bigint AS left_over "
        "      FROM allocations WHERE resource = 'tokens' GROUP BY project_id) a "
        "WHERE p.id = a.project_id",
        {"now": now},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database to create afresh")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set (for a quick try)")
    args = parser.parse_args()
    loaded = load(args.database_url, scale=args.scale)
    print(f"loaded in {loaded.seconds:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in loaded.counts.items()))


if __name__ == "__main__":
    main()
