"""Query words a closed-vocabulary model never saw, mapped to words it knows.

The built-in mini model learnt its words from the synthetic corpus's captions: "purple"
and "grey" but not "violet" or "crimson", which it embeds as noise (P@10 0.10 for "a violet
object" on the heldout split, 1.00 for "a purple object"), and shapes in the singular only
("red circles" 0.26 against 0.79 over 36 colour-shape pairs). A model folder may hold a
`synonyms.json` ({"violet": "purple", ...}); its texts are rewritten word by word before
they are embedded. Open-vocabulary models (real CLIP) ship none and see texts as typed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SYNONYMS_FILE = "synonyms.json"


class Synonyms:
    def __init__(self, table: dict[str, str]):
        self.table = {word.lower(): known for word, known in table.items()}
        # Longest first, so "navy blue" wins over "navy"; whole words only ("ultraviolet" stays).
        words = sorted(self.table, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.IGNORECASE)

    @classmethod
    def load(cls, folder: Path) -> "Synonyms | None":
        path = folder / SYNONYMS_FILE
        return cls(json.loads(path.read_text())) if path.is_file() else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(lambda m: self.table[m.group(1).lower()], text)
