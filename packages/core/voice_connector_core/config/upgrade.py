"""`config migrate` for a file in this format: keys at deprecated places rewritten to the new ones.

Why lines are moved rather than the file regenerated: the operator's comments, order and
untouched keys survive. A moved key goes (with the comment lines just above it) to the end of
its new section, created after its predecessor in the documented order when the file lacks it;
a key of another provider left at its default is removed, with a comment saying so.
"""

from __future__ import annotations

import re

from voice_connector_core.config.moved import MOVED, home
from voice_connector_core.config.sections import SECTIONS, foreign_keys
from voice_connector_core.config.services import PROVIDERS

HEADER = re.compile(r"\s*\[([^\]]+)\]\s*$")
KEY = re.compile(r"\s*([^=:\s;#\[][^=:]*?)\s*[=:]\s*(.*)$")


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """(section, its lines, header first); the lines before any header have section ""."""
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if header := HEADER.match(line):
            blocks.append((header[1].strip(), []))
        blocks[-1][1].append(line)
    return blocks


def _provider_values(blocks: list[tuple[str, list[str]]]) -> dict[str, dict[str, str]]:
    """Each provider section's `key = value` lines, to tell its provider's keys from others'."""
    values: dict[str, dict[str, str]] = {}
    for section, lines in blocks:
        if section in PROVIDERS:
            for line in lines:
                if key := KEY.match(line):
                    values.setdefault(section, {})[key[1]] = key[2].strip()
    return values


def rewrite(text: str) -> tuple[str, list[str]]:
    """(`text` with every key at its new place, what changed); no change: (text, [])."""
    blocks = _blocks(text)
    foreign = {s: foreign_keys(s, v) for s, v in _provider_values(blocks).items()}
    incoming: dict[str, list[str]] = {}
    changes: list[str] = []
    out_blocks: list[tuple[str, list[str]]] = []
    for section, lines in blocks:
        kept: list[str] = []
        pending: list[str] = []
        for line in lines:
            key = KEY.match(line)
            if line.strip().startswith((";", "#")):
                pending.append(line)
                continue
            if key and (section, key[1]) in MOVED:
                new_section, new_key = MOVED[(section, key[1])]
                renamed = line.replace(key[1], new_key, 1)
                incoming.setdefault(new_section, []).extend([*pending, renamed])
                changes.append(f"{home(section, key[1])} → {home(new_section, new_key)}")
            elif key and key[1] in foreign.get(section, {}):
                _, why = foreign[section][key[1]]
                kept.append(f"; removed by config migrate: {key[1]} = {key[2].strip()}: {why}")
                changes.append(f"{home(section, key[1])} removed: {why}")
            else:
                kept += [*pending, line]
            pending = []
        out_blocks.append((section, kept + pending))
    if not changes:
        return text, []
    return "\n".join(_placed(out_blocks, incoming)) + "\n", changes


def _placed(blocks: list[tuple[str, list[str]]], incoming: dict[str, list[str]]) -> list[str]:
    """The file's lines with `incoming` lines at the end of their sections (created if absent)."""
    order = list(SECTIONS)
    present = {section for section, _ in blocks}
    for section in incoming:
        if section in present:
            continue
        before = [s for s in order[: order.index(section)] if s in present]
        at = max((i for i, (s, _) in enumerate(blocks) if s in before), default=0) + 1
        blocks.insert(at, (section, [f"[{section}]", ""]))
        present.add(section)
    out: list[str] = []
    for section, lines in blocks:
        body = list(lines)
        trailing: list[str] = []
        while body and not body[-1].strip() and section in incoming:
            trailing.insert(0, body.pop())
        out += body + incoming.get(section, []) + trailing
        if section in incoming and not trailing:
            out.append("")
    return out
