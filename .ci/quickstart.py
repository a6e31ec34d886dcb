"""Print the commands of the first fenced block under README's "Quick start" heading."""

import re
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text(encoding="utf-8")
section = re.search(r"^#+\s*Quick start\s*$(.*?)(?=^#+\s)", text, re.M | re.S)
if section is None:
    sys.exit("README has no 'Quick start' heading")
block = re.search(r"^```[^\n]*\n(.*?)^```", section.group(1), re.M | re.S)
if block is None:
    sys.exit("README's Quick start has no fenced block")
for line in block.group(1).splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        print(line.removeprefix("$ "))
