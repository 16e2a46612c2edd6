"""`jaif training …` as operators run it: the event id alone on the last line, lists in JSON."""

from __future__ import annotations

import json

from tests.support.procs import last_line
from tests.support.services import Cli


def test_plan_list_and_read_registrations(jaif_env):
    jaif = Cli(jaif_env)
    jaif("db", "upgrade")
    created = jaif(
        "training",
        "create",
        "Intro to JUPITER",
        "--starts",
        "2031-01-10T09:00",
        "--ends",
        "2031-01-10T17:00",
        "--seats",
        "20",
        "--closes",
        "2031-01-05T00:00",
        "--location",
        "JSC",
    )
    event_id = last_line(created)
    assert len(event_id) == 32 and "20 seats" in created.stdout
    [event] = json.loads(last_line(jaif("training", "list", "--json")))
    assert (event["id"], event["seats_left"], event["registration_open"]) == (event_id, 20, True)
    assert event["starts_at"].startswith("2031-01-10T09:00:00") and event["location"] == "JSC"
    assert json.loads(last_line(jaif("training", "registrations", event_id, "--json"))) == []
    backwards = jaif(
        "training",
        "create",
        "x",
        "--starts",
        "2031-01-02",
        "--ends",
        "2031-01-01",
        "--seats",
        "1",
        check=False,
    )
    assert backwards.returncode == 1 and "end after it starts" in backwards.stderr
