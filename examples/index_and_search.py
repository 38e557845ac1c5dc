"""Index a folder into a named corpus, search it, change a file and re-index incrementally.

Runs offline on the defaults (the packaged all-MiniLM-L6-v2 embedder, embedded Chroma); state goes
to a temporary AGENTLONG_HOME so nothing of yours is touched.

    python examples/index_and_search.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

NOTES = {
    "bread.md": "# Bread\n\nKnead the dough for ten minutes. Let it rise for an hour, then bake at 230 °C.\n",
    "owls.txt": "Owls hunt at night. Their soft feathers make their flight almost silent.\n",
    "calc.py": "def add(a, b):\n    \"\"\"Return the sum of two numbers.\"\"\"\n    return a + b\n",
}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="agentlong-example-"))
    os.environ["AGENTLONG_HOME"] = str(tmp / "home")
    from agentlong import Agentlong
    from agentlong.store.corpus import open_corpus

    folder = tmp / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)

    al = Agentlong(model="fake")  # indexing and search never load the chat model
    report = al.index(folder, name="notes")
    print(f"indexed {len(report.indexed)} files into corpus {report.corpus!r}: {report.total_chunks} chunks, "
          f"{report.seconds:.1f}s (embedder {report.embedder})")

    for query in ["how hot should the oven be", "which birds fly silently", "function that adds numbers"]:
        best = al.search("notes", query, k=1)[0]
        print(f"{query!r:32} -> {best.chunk.where()}  score {best.score:.2f}  {best.chunk.text.strip()[:50]!r}")

    (folder / "owls.txt").write_text("Owls hunt at night and can turn their heads 270 degrees.\n")
    (folder / "calc.py").unlink()
    again = al.index(folder, name="notes")
    print(f"re-index: {len(again.indexed)} re-embedded, {len(again.unchanged)} unchanged, "
          f"{len(again.removed)} removed, {again.chunks} chunks embedded")

    corpus = open_corpus(al, "notes")
    print(f"corpus now: {[Path(d.source).name for d in corpus.documents()]}, {len(corpus.chunks())} chunks")


if __name__ == "__main__":
    main()
