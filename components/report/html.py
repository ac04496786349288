"""The report's blocks (components/document.py) as one static HTML page: inline CSS, figures
embedded as base64 PNGs, no scripts, fonts or stylesheets fetched, so it opens from disk anywhere.

All text is escaped with `html.escape`; the Markdown's inline subset is then applied: `code`,
**bold** and [text](url), where url must be http, https or relative (anything else stays text).
The same blocks give the same bytes."""
from __future__ import annotations

import base64
import html
import re

from components.report.document import Block, Bullets, Figure, Heading, Paragraph, Table

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; background: #fff;
       line-height: 1.5; }
h1 { font-size: 1.75rem; margin: 0 0 1rem; }
h2 { font-size: 1.35rem; margin-top: 2.4rem; padding-bottom: .25rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1rem; margin-top: 1.6rem; }
a { color: #0b5cad; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
       background: #f2f2f2; padding: .05rem .3rem; border-radius: 3px; }
table.grid { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .88rem; }
table.grid th, table.grid td { border: 1px solid #ddd; padding: .3rem .55rem; vertical-align: top; }
table.grid th { position: sticky; top: 0; background: #f3f5f7; text-align: left; font-weight: 600; }
table.grid tbody tr:nth-child(even) td { background: #fafbfc; }
table.grid tbody tr:hover td { background: #eef4fb; }
table.grid .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { margin-top: .35rem; font-size: .88rem; color: #555; }
""".strip()

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

# One alternation, so the leftmost construct wins and code spans are never re-parsed.
# A link's url may hold one level of balanced parentheses (Wikipedia-style urls).
_INLINE = re.compile(r"`(?P<code>[^`]+)`"
                     r"|\*\*(?P<bold>.+?)\*\*"
                     r"|\[(?P<text>[^\]]+)\]\((?P<url>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def safe_url(url: str) -> bool:
    """http(s) or relative. Control characters are refused too: browsers strip them before
    reading the scheme, so "\\x01javascript:" would otherwise pass as relative."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(0).lower() in ("http:", "https:")


def inline(text: str) -> str:
    """`text` escaped, with `code` -> <code>, **bold** -> <strong>, [text](url) -> <a href>."""
    text, out, pos = str(text), [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        if m.group("code") is not None:
            out.append(f"<code>{html.escape(m.group('code'))}</code>")
        elif m.group("bold") is not None:
            out.append(f"<strong>{inline(m.group('bold'))}</strong>")
        elif safe_url(m.group("url")):
            out.append(f'<a href="{html.escape(m.group("url"))}">{inline(m.group("text"))}</a>')
        else:
            out.append(html.escape(m.group(0)))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def slug(text: str) -> str:
    """`Δ vs scratch (listops)` -> `vs-scratch-listops`: an id for linking to a section."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _table(t: Table) -> str:
    width = max([len(t.header)] + [len(r) for r in t.rows])
    numeric = [bool(n) for n in t.numeric] + [False] * (width - len(t.numeric))
    cls = {True: ' class="num"', False: ""}
    head = "".join(f"<th{cls[n]}>{inline(h)}</th>" for h, n in zip(t.header, numeric))
    rows = "\n".join("<tr>" + "".join(f"<td{cls[n]}>{inline(c)}</td>" for c, n in zip(row, numeric)) + "</tr>"
                     for row in t.rows)
    return f'<table class="grid">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (f'<figure id="fig-{slug(f.name)}"><img src="data:image/png;base64,{data}" alt="{html.escape(f.caption)}">'
            f"<figcaption>{inline(f.caption)}</figcaption></figure>")


def _blocks(blocks: list[Block]) -> list[str]:
    out, ids = [], {}  # ids: slug -> times seen, so two sections of one name get distinct anchors
    for b in blocks:
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 3)
            anchor = ""
            if level == 2:
                base = slug(b.text)
                ids[base] = ids.get(base, 0) + 1
                anchor = f' id="{base}"' if ids[base] == 1 else f' id="{base}-{ids[base]}"'
            out.append(f"<h{level}{anchor}>{inline(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>\n" + "\n".join(f"<li>{inline(i)}</li>" for i in b.items) + "\n</ul>")
        elif isinstance(b, Table):
            out.append(_table(b))
        elif isinstance(b, Figure):
            out.append(_figure(b))
        else:
            raise TypeError(f"not a report block: {b!r}")
    return out


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained page (UTF-8): the blocks in order under <title>`title`</title>."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Belt and braces: even a tag that slipped through could fetch nothing and run nothing.
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{html.escape(title)}</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
        *_blocks(blocks), "</body>", "</html>", ""])
