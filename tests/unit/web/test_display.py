"""The portal's display helpers: a file's size as people read it."""

from __future__ import annotations

import pytest

from jaif.web.display import size


@pytest.mark.parametrize(("value", "text"), [
    (None, "—"), (0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"), (1024, "1 KiB"), (1536, "1.5 KiB"),
    (5 * 2**20, "5 MiB"), (200 * 2**20, "200 MiB"), (3 * 2**30 + 2**29, "3.5 GiB"), (4096 * 2**30, "4,096 GiB"),
])
def test_a_size(value, text):
    assert size(value) == text
