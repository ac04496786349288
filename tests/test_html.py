"""The HTML report page: escaped text, the inline subset, embedded figures, nothing fetched,
the same bytes for the same blocks."""
import base64
import re

import pytest

from components.report.document import Bullets, Figure, Heading, Paragraph, Table, to_markdown
from components.report.html import inline, to_html

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # any bytes: the page must carry them unchanged


def blocks():
    return [Heading("Grid <1>", 1),
            Paragraph("uses `masked_spt` and **SPT**; see [the paper](https://arxiv.org/abs/2310.02980)"),
            Heading("Claims", 2),
            Table(["arch", "acc"], [["<script>alert(1)</script>", "34.85"], ["s4d | x", "28.90"]], [False, True]),
            Bullets(["a [bad](javascript:alert(1)) link", "see [below](#claims)"]),
            Heading("Claims", 2),
            Figure("heat", PNG, 'a <caption> "quoted"'), Figure("curves", PNG[::-1], "curves")]


def test_text_is_escaped():
    page = to_html(blocks(), "Report & co")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Report &amp; co</title>" in page and "<h1>Grid &lt;1&gt;</h1>" in page
    assert 'alt="a &lt;caption&gt; &quot;quoted&quot;"' in page
    assert "<figcaption>a &lt;caption&gt; &quot;quoted&quot;</figcaption>" in page


def test_table_markup():
    page = to_html(blocks(), "r")
    assert '<table class="grid">\n<thead><tr><th>arch</th><th class="num">acc</th></tr></thead>' in page
    assert '<td class="num">34.85</td>' in page and "<td>s4d | x</td>" in page
    # fewer `numeric` flags than columns: the cells are kept, unflagged
    short = to_html([Table(["a", "b", "c"], [["1", "2", "3"]], [True])], "r")
    assert '<tr><td class="num">1</td><td>2</td><td>3</td></tr>' in short


def test_headings_get_unique_anchors():
    page = to_html(blocks(), "r")
    assert '<h2 id="claims">Claims</h2>' in page and '<h2 id="claims-2">Claims</h2>' in page
    assert '<h3>' in to_html([Heading("sub", 3)], "r") and "<h3 id" not in to_html([Heading("sub", 3)], "r")


@pytest.mark.parametrize("text, expected", [
    ("`x`", "<code>x</code>"),
    ("**b**", "<strong>b</strong>"),
    ("**a `c` b**", "<strong>a <code>c</code> b</strong>"),
    ("`**not bold** [no](link)`", "<code>**not bold** [no](link)</code>"),
    ("[t](https://e.org/a?x=1&y=2)", '<a href="https://e.org/a?x=1&amp;y=2">t</a>'),
    ("[t](http://e.org)", '<a href="http://e.org">t</a>'),
    ("[t](figures/h.png)", '<a href="figures/h.png">t</a>'),
    ("[t](#claims)", '<a href="#claims">t</a>'),
    ("[**t**](../x)", '<a href="../x"><strong>t</strong></a>'),
    ("[w](https://en.wikipedia.org/wiki/A_(b))", '<a href="https://en.wikipedia.org/wiki/A_(b)">w</a>'),
    ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    ("[x](JavaScript:alert(1))", "[x](JavaScript:alert(1))"),
    ("[x](data:text/html,hi)", "[x](data:text/html,hi)"),
    ("[x](\x01javascript:alert(1))", "[x](\x01javascript:alert(1))"),
    ('[x](https://e.org/"onmouseover="a)', '<a href="https://e.org/&quot;onmouseover=&quot;a">x</a>'),
    ("a < b & `c<d>`", "a &lt; b &amp; <code>c&lt;d&gt;</code>"),
    ("2 * 3 ** 4", "2 * 3 ** 4"),
])
def test_inline_subset(text, expected):
    assert inline(text) == expected


def test_figures_are_embedded_byte_for_byte():
    page = to_html(blocks(), "r")
    data = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(d) for d in data] == [PNG, PNG[::-1]]
    assert '<figure id="fig-heat">' in page and "<figcaption>curves</figcaption>" in page


def test_nothing_is_fetched():
    page = to_html(blocks(), "r")
    assert re.findall(r'src="([a-z]+):', page) == ["data", "data"]
    assert "<link" not in page and "@import" not in page and "<script" not in page and "url(" not in page
    assert 'href="javascript' not in page
    assert not re.search(r"https?://", re.sub(r'<a href="https?://[^"]*">', "", page))  # only links to follow
    assert "default-src 'none'" in page  # and the page's CSP forbids fetching anything but data: images


def test_deterministic():
    assert to_html(blocks(), "r") == to_html(blocks(), "r")
    assert to_html(blocks(), "r") != to_html(blocks()[:-1], "r")


def test_markdown_says_the_same():
    md = to_markdown(blocks(), "figures")
    assert "| s4d \\| x | 28.90 |" in md and "|---|---:|" in md
    assert '![a <caption> "quoted"](figures/heat.png)' in md
