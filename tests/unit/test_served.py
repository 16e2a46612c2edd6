"""The address every process gives users, jobs and e-mail links (src/jaif/served.py)."""

from __future__ import annotations

import socket

from jaif import served
from jaif.config import Settings


def test_the_public_url_wins_then_what_the_server_recorded_then_the_settings(tmp_path):
    plain = Settings(data_dir=tmp_path)
    assert served.served_url(plain) == "http://127.0.0.1:8000"
    # `jaif serve --port 4321` records where it listens; the command line's settings still say 8000.
    served.record(Settings(data_dir=tmp_path), host="127.0.0.1", port=4321)
    assert served.served_url(plain) == "http://127.0.0.1:4321"
    public = Settings(data_dir=tmp_path, identity={"public_url": "https://ai.example.eu/"})
    assert served.served_url(public) == "https://ai.example.eu"


def test_a_wildcard_bind_is_named_by_the_host_name(tmp_path):
    served.record(Settings(data_dir=tmp_path), host="0.0.0.0", port=9000)
    assert served.served_url(Settings(data_dir=tmp_path)) == f"http://{socket.getfqdn()}:9000"
    assert served.served_url(Settings(data_dir=tmp_path / "other", web={"host": "::1"})) == "http://[::1]:8000"
