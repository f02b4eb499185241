"""The tutorial's chapters (tools/docs/chapters.py): the split loses nothing, and every link
to a tutorial anchor lands on the chapter that holds it."""

import re
from pathlib import Path

import pytest

from tools.docs.chapters import expand_nav, relink, split, write_chapters

ROOT = Path(__file__).resolve().parent.parent

TEXT = """<!-- generated -->
# Title

Intro, see [the notes](#notes) and [Smith 2020](#ref-smith2020).

## 1. First

```python
## not a heading: inside code
x = 1
```

See [Smith 2020](#ref-smith2020) and [below](#a-part).

### A part

Text.

## Notes

<a id="note-x"></a>Back to [the first chapter](#1-first).

## References

1. <a id="ref-smith2020"></a>A. Smith. *A paper.* 2020.
"""


def test_split_cuts_at_level_two_headings_outside_code_only():
    chapters = split(TEXT)
    assert [c.name for c in chapters] == [
        "tutorial.md", "tutorial-1-first.md", "tutorial-notes.md", "tutorial-references.md",
    ]  # fmt: skip
    first = chapters[1].text
    assert first.startswith("# 1. First\n") and "## A part" in first  # raised one level
    assert "## not a heading: inside code" in first  # code untouched

    # nothing lost or moved: the chapters, heading marks aside, are the text after the intro
    def unmarked(text):
        return re.sub(r"(?m)^#+ ", "", text)

    body = "".join(c.text for c in chapters[1:])
    assert unmarked(body) == unmarked(TEXT[TEXT.index("## 1. First") :])
    assert chapters[0].text.startswith(TEXT[: TEXT.index("## 1. First")].rstrip())
    for c in chapters[1:]:
        assert f"]({c.name})" in chapters[0].text  # the first page lists every chapter


def test_links_point_at_the_chapter_holding_the_anchor(tmp_path):
    (tmp_path / "tutorial.md").write_text(TEXT)
    (tmp_path / "other.md").write_text(
        "[a](tutorial.md#ref-smith2020) [b](tutorial.md) [c](#ref-smith2020) [d](x.md#notes)"
    )
    chapters = {c.name: (tmp_path / c.name).read_text() for c in write_chapters(tmp_path)}
    assert "[Smith 2020](tutorial-references.md#ref-smith2020)" in chapters["tutorial.md"]
    assert "[the notes](tutorial-notes.md#notes)" in chapters["tutorial.md"]
    assert "[below](#a-part)" in chapters["tutorial-1-first.md"]  # on its own page: kept
    assert "(tutorial-1-first.md#1-first)" in chapters["tutorial-notes.md"]
    other = (tmp_path / "other.md").read_text()
    # another page: links into the tutorial move, its own anchors and other pages' stay
    assert other == (
        "[a](tutorial-references.md#ref-smith2020) [b](tutorial.md) [c](#ref-smith2020) "
        "[d](x.md#notes)"
    )


def test_an_anchor_no_chapter_holds_is_left_for_the_link_check():
    owner = {"ref-a": "tutorial-references.md"}
    text = "[x](#missing) [y](#ref-a)"
    assert relink(text, "tutorial-1.md", owner, chapter=True) == (
        "[x](#missing) [y](tutorial-references.md#ref-a)"
    )


def test_the_nav_entry_becomes_a_section_of_chapters():
    chapters = split(TEXT)
    nav = expand_nav([{"Home": "index.md"}, {"Tutorial": "tutorial.md"}, {"API": "api.md"}],
                     chapters)  # fmt: skip
    assert nav[0] == {"Home": "index.md"} and nav[2] == {"API": "api.md"}
    section = nav[1]["Tutorial"]
    assert [list(e.values())[0] for e in section] == [c.name for c in chapters]
    assert list(section[1]) == ["1. First"]


def test_every_reference_link_of_the_tutorial_lands_on_the_references_chapter(tmp_path):
    tutorial = ROOT / "docs" / "tutorial.md"
    if not tutorial.exists():
        pytest.skip("docs/tutorial.md not generated yet (make docs)")
    (tmp_path / "tutorial.md").write_text(tutorial.read_text())
    chapters = write_chapters(tmp_path)
    assert [c.name for c in chapters][-1] == "tutorial-references.md"
    refs = set(re.findall(r'id="(ref-[\w-]+)"', (tmp_path / "tutorial-references.md").read_text()))
    for c in chapters:
        text = (tmp_path / c.name).read_text()
        for page, anchor in re.findall(r"\]\(([\w.-]*)#(ref-[\w-]+)\)", text):
            assert anchor in refs, f"{c.name}: #{anchor} is in no reference entry"
            assert page == ("" if c.name == "tutorial-references.md" else "tutorial-references.md")
        assert re.match(r"(<!--.*?-->\s*)?# ", text, re.S), f"{c.name} has no title"
