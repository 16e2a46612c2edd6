"""Markdown of chat messages as safe HTML, rendered on the server (markdown-it-py, CommonMark).

Raw HTML in a message is never passed through: the ``html`` option is off, so ``<script>`` or
``<img onerror=...>`` in a model's answer (or a user's message) shows as text. Links with a scheme other
than http(s), mailto or a relative one (``javascript:``, ``data:``...) are not made links (markdown-it's
validateLink), and every link opens without the portal as its opener or referrer.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _validate_link(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(SAFE_SCHEMES) or ":" not in lowered.split("/", 1)[0]


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _validate_link  # type: ignore[method-assign]

    def link_open(renderer, tokens, idx, options, env):
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        tokens[idx].attrSet("target", "_blank")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


def markdown(text: str) -> Markup:
    """``text`` (Markdown) as HTML in which nothing of ``text`` is markup but Markdown's own."""
    return Markup(_parser().render(text))
