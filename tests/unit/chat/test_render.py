"""Chat messages' Markdown as HTML: formatted, with nothing of the message's own markup passed through."""

from __future__ import annotations

from jaif.chat.render import markdown


def test_raw_html_in_an_answer_is_escaped():
    html = str(markdown('Hi <script>alert("x")</script> and <img src=x onerror="alert(1)"> there'))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html


def test_a_block_of_raw_html_is_escaped_too():
    html = str(markdown('<div onclick="steal()">\n<script>alert(1)</script>\n</div>'))
    assert "<div" not in html and "<script" not in html and "&lt;div onclick=" in html


def test_markdown_and_code_blocks_are_formatted_and_their_code_escaped():
    text = "**bold** and `x<y`\n\n```python\nif a < b:\n    print('<b>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    html = str(markdown(text))
    assert "<strong>bold</strong>" in html and "<code>x&lt;y</code>" in html
    assert '<pre><code class="language-python">if a &lt; b:' in html and "&lt;b&gt;" in html and "<b>" not in html
    assert "<table>" in html and "<td>2</td>" in html


def test_only_safe_links_become_links_and_they_open_apart():
    html = str(markdown("[a](javascript:alert(1)) [b](data:text/html,x) [c](https://example.org/) [d](/chat)"))
    assert 'href="javascript' not in html and 'href="data:' not in html
    assert '<a href="https://example.org/" rel="noopener noreferrer nofollow" target="_blank">c</a>' in html
    assert 'href="/chat"' in html
