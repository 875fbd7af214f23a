"""Every link between the project's Markdown pages that names a section (`page.md#section`)
lands on a heading of that page: two such links pointed at sections that no longer existed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/*.md")])
LINK = re.compile(r"\]\(([^)#\s]*)#([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.*)$", re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(heading) for heading in HEADING.findall(page.read_text())}


def test_the_anchor_rule_matches_githubs() -> None:
    assert anchor("Scale-out: workers and replicas (issue 18.2, 18.5)") == (
        "scale-out-workers-and-replicas-issue-182-185"
    )
    assert anchor("`bench quality`'s seasonal rows") == "bench-qualitys-seasonal-rows"


def test_every_link_to_a_section_lands_on_a_heading() -> None:
    assert len(PAGES) > 10
    broken = []
    for page in PAGES:
        for path, section in LINK.findall(page.read_text()):
            target = (page.parent / path).resolve() if path else page
            if target.suffix != ".md":
                continue
            if not target.exists() or section not in anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {path}#{section}")
    assert not broken, "links to sections that do not exist:\n" + "\n".join(broken)
