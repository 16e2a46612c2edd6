"""Replica URLs as jaif shows them: credentials and query strings never appear."""

from __future__ import annotations

import pytest

from jaif.inference.service import display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://gpu1:8000/v1", "http://gpu1:8000/v1"),
        ("http://svc:topsecret@gpu1:8000/v1", "http://***@gpu1:8000/v1"),
        ("https://token@example.org/v1", "https://***@example.org/v1"),
        ("http://a:b@c@gpu1/v1", "http://***@gpu1/v1"),  # an unescaped @ in the password
        ("http://gpu1/v1?api_key=topsecret", "http://gpu1/v1?***"),
        ("builtin:smollm2-135m-instruct", "builtin:smollm2-135m-instruct"),
    ],
)
def test_display_url(url, shown):
    assert display_url(url) == shown
