"""The evidence core every strategy uses: numbered units, selection by id, multi-hop queries,
aggregation in code, answers with verbatim citations, and the one "fits in one call" rule.

- :mod:`.units` cuts chunks into sentences (prose) or lines (code) with exact spans;
- :mod:`.select` shows units numbered and lets the model answer with ids (an ``enum`` schema);
- :mod:`.hops` turns names in selected units into the next retrieval query;
- :mod:`.aggregate` de-duplicates labelled units and counts them in code;
- :mod:`.answer` writes the answer, the count or the summary and cites units;
- :mod:`.cite` holds the one ``NOT_FOUND``, the grounding check and citation numbering;
- :mod:`.budget` sizes every call from the model's real window.
"""

from .cite import NOT_FOUND
from .units import Unit, split_units

__all__ = ["NOT_FOUND", "Unit", "split_units"]
