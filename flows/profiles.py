"""`arena profile NAME`: switch params.yaml to a named profile by writing the profile's values
over the keys it names (a profile is {dotted.key: value}; every profile names the same keys, so
switching back restores them).

The file is edited line by line, not re-serialized, so its comments, layout and every other
value stay as written: each key a profile names must be written in block style in params.yaml
(`key: value` on its own line), and its new value is written in flow style on that line. The
result is validated before it replaces the file."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.atomic import write_text
from components.config import ConfigError, load_params, parse_params

_KEY = re.compile(r"(?P<key>[A-Za-z0-9_-]+):(?=\s|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _blank(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _find(lines: list[str], dotted: str) -> int:
    """Index of the line holding `dotted`, descending block mappings; KeyError if not written so."""
    start, end, parent = 0, len(lines), -1
    for part in dotted.split("."):
        child, found = None, None
        for i in range(start, end):
            if _blank(lines[i]):
                continue
            ind = _indent(lines[i])
            if ind <= parent:
                end = i
                break
            child = ind if child is None else child
            m = _KEY.match(lines[i].lstrip())
            if ind == child and m and m.group("key") == part:
                found = i
        if found is None:
            raise KeyError(dotted)
        start, parent = found + 1, _indent(lines[found])
        end = next((i for i in range(start, len(lines)) if not _blank(lines[i]) and _indent(lines[i]) <= parent),
                   len(lines))
    return found


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def set_value(lines: list[str], dotted: str, value) -> list[str]:
    """`lines` with `dotted`'s value replaced by `value` (its old block value, if any, removed)."""
    i = _find(lines, dotted)
    line, ind = lines[i], _indent(lines[i])
    key = _KEY.match(line.lstrip()).group("key")
    comment = re.search(r"\s#\s.*$", line[ind + len(key) + 1:])
    head = f"{' ' * ind}{key}: {_flow(value)}"
    if comment:
        column = line.index(comment.group(0)) + 1 if line.index(comment.group(0)) + 1 > len(head) else len(head) + 2
        head = head.ljust(column - 1) + " " + comment.group(0).strip()
    end = next((j for j in range(i + 1, len(lines)) if not _blank(lines[j]) and _indent(lines[j]) <= ind), len(lines))
    while end > i + 1 and _blank(lines[end - 1]):  # keep the blank/comment lines before the next key
        end -= 1
    return lines[:i] + [head] + lines[end:]


def apply(path: str | Path, name: str) -> list[str]:
    """Write profile `name` into the params file; returns the keys whose values changed."""
    path = Path(path)
    params = load_params(path)
    if name not in params.profiles:
        raise ConfigError(f"{path}: profiles.{name}: not defined (profiles: {', '.join(sorted(params.profiles)) or 'none'})")
    text = path.read_text()
    raw, lines = yaml.safe_load(text), text.splitlines()
    changed = []
    for key, value in {**params.profiles[name], "profile": name}.items():
        node = raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        try:
            lines = set_value(lines, key, value)
        except KeyError:
            raise ConfigError(f"{path}: profiles.{name}: '{key}' is not written in block style in the file; "
                              f"write it out (e.g. `{key.split('.')[-1]}: null`) so a profile can set it") from None
        if node != value and key != "profile":
            changed.append(key)
    out = "\n".join(lines) + "\n"
    parse_params(yaml.safe_load(out), str(path))  # what would be written must validate
    write_text(out, path)
    return changed
