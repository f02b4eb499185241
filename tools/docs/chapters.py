"""The tutorial as chapters: docs/tutorial.md split at its ``## `` headings, at site build time.

The tutorial stays one generated file (docs/tutorial.md, from one template); the site shows it
as one page per ``## `` section, so that a reader gets it a chapter at a time with previous /
next links. The part before the first ``## `` heading stays ``tutorial.md`` (the title, the
outline and, added here, the list of chapters); each section becomes ``tutorial-SLUG.md``
with its headings raised one level (its ``## `` title is the page's ``# ``). Links to an
anchor (``#ref-doersch2016``, ``#references``, ``tutorial.md#...``) are pointed at the chapter
that holds the anchor, on the tutorial's pages and on every other page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown.extensions.toc import slugify

TUTORIAL = "tutorial.md"
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6}) +(.*?)\s*#*\s*$")
EXPLICIT_ID = re.compile(r"""id=["']([^"']+)["']|\{[^}]*#([\w-]+)[^}]*\}""")


@dataclass
class Chapter:
    """One page of the tutorial: its file name, its navigation title and its markdown."""

    name: str
    title: str
    text: str

    def anchors(self) -> set[str]:
        """The ids a link can land on: headings (slugged as the toc extension does) and
        explicit ``id="..."`` or ``{ #id }`` attributes."""
        ids = set()
        for line in outside_code(self.text):
            m = HEADING.match(line)
            if m:
                ids.add(slugify(re.sub(r"\{[^}]*\}", "", m[2]).strip(), "-"))
            ids.update(a or b for a, b in EXPLICIT_ID.findall(line))
        return ids


def outside_code(text: str) -> list[str]:
    """The lines of ``text`` that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def split(text: str) -> list[Chapter]:
    """``text`` cut before each ``## `` heading outside code; the first part keeps the name
    tutorial.md, each other part is named after its heading."""
    parts: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            parts.append([])
        parts[-1].append(line)
    intro = "".join(parts[0])
    title = next((m[2] for m in map(HEADING.match, intro.splitlines()) if m), "Tutorial")
    chapters = [Chapter(TUTORIAL, "Introduction", intro)]
    for part in parts[1:]:
        heading = part[0][3:].strip()
        body = "".join(raise_headings(part))
        chapters.append(Chapter(f"tutorial-{slugify(heading, '-')}.md", heading, body))
    chapters[0].text = intro.rstrip() + "\n\n" + contents(title, chapters[1:])
    return chapters


def raise_headings(lines: list[str]) -> list[str]:
    """Every heading outside code one level up (## to #, ### to ##, ...)."""
    out, fenced = [], False
    for line in lines:
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and re.match(r"^#{2,6} ", line):
            line = line[1:]
        out.append(line)
    return out


def contents(title: str, chapters: list[Chapter]) -> str:
    """The list of chapters that closes the tutorial's first page."""
    lines = [f"The {len(chapters)} chapters of *{title}*, each ending with a link to the next:", ""]
    lines += [f"- [{c.title}]({c.name})" for c in chapters]
    return "\n".join(lines) + "\n"


def relink(text: str, here: str, owner: dict[str, str], *, chapter: bool) -> str:
    """Links in ``text`` (the page named ``here``; ``chapter``: one of the tutorial's) to a
    tutorial anchor, pointed at the chapter ``owner[anchor]`` that holds it: ``(#x)`` on a
    chapter, ``(tutorial.md#x)`` on any page."""

    def fix(m: re.Match) -> str:
        page, frag = m[2], m[3]
        if not (page == TUTORIAL or (page == "" and chapter)) or frag not in owner:
            return m[0]
        target = owner[frag]
        return f"{m[1]}{'' if target == here else target}#{frag}{m[4]}"

    return re.sub(r"(\]\(|href=\")([\w.-]*)#([\w-]+)(\)|\")", fix, text)


def write_chapters(stage: Path) -> list[Chapter]:
    """Split STAGE/tutorial.md into chapter pages beside it and point every page's tutorial
    links at the right chapter; the chapters, in order, for the navigation."""
    chapters = split((stage / TUTORIAL).read_text())
    owner: dict[str, str] = {}
    for c in chapters:
        for anchor in c.anchors():
            owner.setdefault(anchor, c.name)
    for c in chapters:
        marker = "" if c.name == TUTORIAL else "<!-- a chapter of docs/tutorial.md -->\n\n"
        (stage / c.name).write_text(marker + relink(c.text, c.name, owner, chapter=True))
    names = {c.name for c in chapters}
    for page in stage.rglob("*.md"):
        if page.name not in names:
            page.write_text(relink(page.read_text(), page.name, owner, chapter=False))
    return chapters


def expand_nav(nav: list, chapters: list[Chapter]) -> list:
    """The site's navigation with its ``tutorial.md`` entry made a Tutorial section that lists
    every chapter."""
    section = [{c.title: c.name} for c in chapters]
    out = []
    for entry in nav:
        if isinstance(entry, dict) and list(entry.values()) == [TUTORIAL]:
            entry = {next(iter(entry)): section}
        out.append(entry)
    return out
