"""Times in the portal are 24-hour with ISO dates (issue 14, form polish: "5:37:47 PM" in an EU portal).

The browser's ``toLocaleString``/``toLocaleTimeString``/``toLocaleDateString`` follow the visitor's locale
(12-hour in a US one); the server's ``strftime`` with ``%I`` or ``%p`` is 12-hour, and one with month
names (``%b``, ``%B``) is no ISO date. Every script and template of the package is read here, the ones added later too.
"""

from __future__ import annotations

import re
from pathlib import Path

import jaif

PACKAGE = Path(jaif.__file__).parent
LOCALE_CALL = re.compile(r"\.toLocale(Date|Time)?String\s*\(")
TWELVE_HOUR = re.compile(r"""strftime\(\s*["'][^"']*%[Ilp]""")
NOT_ISO = re.compile(r"""strftime\(\s*["'][^"']*%[bB]""")  # month names: dates as 2026-12-04


def _sources(*suffixes: str) -> list[Path]:
    return sorted(p for suffix in suffixes for p in PACKAGE.rglob(f"*{suffix}"))


def test_no_script_or_template_formats_a_time_in_the_visitors_locale():
    found = [f"{p.relative_to(PACKAGE)}: {m.group(0)}" for p in _sources(".js", ".html")
             for m in LOCALE_CALL.finditer(p.read_text(encoding="utf-8"))]
    assert not found, f"times in the visitor's locale (12-hour in some): {found}"


def test_templates_and_pages_show_24_hour_times_and_iso_dates():
    found = [f"{p.relative_to(PACKAGE)}: {m.group(0)}" for p in _sources(".html", ".py")
             for pattern in (TWELVE_HOUR, NOT_ISO) for m in pattern.finditer(p.read_text(encoding="utf-8"))]
    assert not found, found


def test_the_checks_catch_what_they_are_for():
    assert LOCALE_CALL.search("new Date().toLocaleTimeString()") and LOCALE_CALL.search("d.toLocaleString('en')")
    assert TWELVE_HOUR.search('x.strftime("%I:%M %p")') and NOT_ISO.search('e.starts_at.strftime("%a %d %b %Y, %H:%M")')
    assert not NOT_ISO.search('x.strftime("%a %Y-%m-%d %H:%M")') and not TWELVE_HOUR.search('strftime("%H:%M")')
