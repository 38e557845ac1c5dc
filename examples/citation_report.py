"""Ask a question and write the citation report: one self-contained HTML page (offline, default model).

    python examples/citation_report.py                  # default local GGUF model
    python examples/citation_report.py --out report.html --model fake

The page shows the answer with each [n] linked to the passage it quotes (highlighted, in context),
a strip per document showing where the evidence lies, the strategy and why, usage and the per-step
trace. It loads nothing from the network; open it in any browser. The same page comes from the CLI:
``agentlong ask FILE "question" --html report.html``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agentlong import Agentlong

LOG = ("Lighthouse keeper's log, Skerry Point.\n\n"
       "The lamp was cleaned on Monday and the brass rails polished.\n"
       "On Tuesday the supply boat brought forty litres of paraffin and a crate of tinned fish.\n"
       "The spare lens is kept in the oak chest under the stairs of the lamp room.\n"
       "Fog on Wednesday: the horn sounded for six hours.\n"
       "A storm on Thursday broke two panes of the lantern; they were replaced on Friday.\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model string (default: the local default GGUF)")
    ap.add_argument("--out", default=None, help="where to write the page (default: a temp folder)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="agentlong_report_"))
    doc = folder / "lighthouse_log.txt"
    doc.write_text(LOG)

    answer = Agentlong(model=args.model).ask(doc, "Where is the spare lens kept?")
    print(f"A: {answer.text}\n   (strategy {answer.strategy}; {len(answer.citations)} citation(s))")
    out = Path(args.out) if args.out else folder / "report.html"
    out.write_text(answer.to_html(), encoding="utf-8")  # re-reads the cited file for the context
    print(f"report: {out.resolve()}")


if __name__ == "__main__":
    main()
