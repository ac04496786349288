"""A report as a list of blocks, rendered to Markdown here (and to HTML in components/html.py),
so both formats always say the same thing. Text fields may use a small inline Markdown subset:
`code`, **bold**, [link](url)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 1 = the title


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)  # right-align these columns (default: none)


@dataclass(frozen=True)
class Figure:
    name: str  # file stem: written as <name>.png beside the Markdown
    png: bytes
    caption: str


Block = Union[Heading, Paragraph, Bullets, Table, Figure]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], figure_dir: str = "figures") -> str:
    """Markdown; figures are linked as `figure_dir/<name>.png` (the caller writes the files)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            numeric = b.numeric or [False] * len(b.header)
            out.append("| " + " | ".join(_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({figure_dir}/{b.name}.png)", "", f"*{b.caption}*", ""]
        else:
            raise TypeError(f"not a report block: {b!r}")
    return "\n".join(out).rstrip() + "\n"
