"""The README's console transcripts, for tests that run the same commands and compare the output."""

import os
import shlex
from typing import List, Tuple

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def transcripts(section_title: str) -> List[Tuple[List[str], List[str]]]:
    """(command args, printed lines) of every `$ kfp-lineage ...` in the README section's text blocks."""
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index(f"## {section_title}\n"):]
    section = section[:section.index("\n## ", 3)]
    found = []
    for block in section.split("```text\n")[1:]:
        for chunk in block[:block.index("```")].split("$ kfp-lineage ")[1:]:
            command, *printed = chunk.rstrip("\n").split("\n")
            found.append((shlex.split(command), printed))
    return found
