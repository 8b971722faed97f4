"""ARCHITECTURE.md's "Where to add things" shows real registry entries: each code block there is, up to line
breaks and indentation, an entry of the registry file named in the same bullet."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_shown_entry_is_in_the_file_its_bullet_names():
    section = (REPO / "ARCHITECTURE.md").read_text().split("## Where to add things")[1].split("\n## ")[0]
    bullets = [bullet for bullet in section.split("\n- ") if "```python" in bullet]
    assert len(bullets) == 3, "a head, an attention method and a data set each show their registry entry"
    for bullet in bullets:
        before, block = re.search(r"(.*?)```python\n(.*?)```", bullet, re.S).groups()
        registry = re.findall(r"`(isanet/[\w/]+\.py)`", before)[-1]  # the file named last before the entry
        assert squeeze(block) in squeeze((REPO / registry).read_text()), f"{registry} has no entry {block}"
