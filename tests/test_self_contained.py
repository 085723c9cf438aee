"""The repository cites only itself: no tracked file names the project's private notes or a path outside the repo.

The release and the paper are described in docs/release.md and docs/paper.md; cite those instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# split so that this file does not match itself
FORBIDDEN = ("official" + "-layout", "paper" + "-facts", "bench" + "-protocol", ".." + "/shared")
PATTERN = re.compile("|".join(re.escape(word) for word in FORBIDDEN))


def tracked_text_files() -> list[Path]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    out = listing.decode("utf-8", "surrogateescape")
    paths = []
    for name in out.split("\0"):
        path = ROOT / name
        if not name or not path.is_file():  # deleted in the working tree, or a submodule
            continue
        head = path.open("rb").read(8192)
        if b"\0" in head:  # binary
            continue
        paths.append(path)
    return paths


def offending_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", "replace")
    rel = path.relative_to(ROOT)
    return [
        f"{rel}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if PATTERN.search(line)
    ]


def test_pattern_catches_each_spelling():
    lines = [
        "see " + FORBIDDEN[0] + ".md 2.10",
        "(" + FORBIDDEN[1] + " 5.5)",
        FORBIDDEN[2] + " C.7",
        "`" + FORBIDDEN[3] + "/docs/x.md`",
    ]
    assert all(PATTERN.search(line) for line in lines)
    assert not PATTERN.search("docs/release.md §5.2, docs/paper.md §8.3, shared/ folder")


def test_tracked_files_cite_nothing_outside_the_repository():
    files = tracked_text_files()
    assert {ROOT / "README.md", ROOT / "ptdit" / "__init__.py"} <= set(files)  # the listing works
    found = [line for path in files for line in offending_lines(path)]
    assert not found, (
        f"{len(found)} line(s) cite notes outside the repository; cite docs/release.md or docs/paper.md:\n"
        + "\n".join(found)
    )
