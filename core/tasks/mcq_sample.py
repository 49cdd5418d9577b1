"""The bundled MCQ sample's held-out paragraphs: what the Classroom offers and the read evaluation asks about.

Apart from core.tasks.mcq because it reads the sample through core.data, which itself uses the task registry:
the task module must not import the data pipeline (that made an import circle).
"""

from __future__ import annotations

from functools import lru_cache

from core.data import read_table, resolve_source

SAMPLE = "sample:vi_informatics_mcq"  # the bundled MCQs, split by paragraph (assets/samples/README.md)


@lru_cache(maxsize=2)
def sample_paragraphs(split: str = "test") -> tuple[dict, ...]:
    """One entry per distinct paragraph of the bundled MCQ sample's ``split``, in file order:
    ``{"context_id", "topic", "context", "answer"}``, where ``answer`` is the text of the key of the paragraph's
    first question (the phrase a teacher would mark). The test paragraphs are never trained on: the Classroom
    offers them and the read evaluation writes questions for them."""
    frame = read_table(resolve_source(SAMPLE))
    frame = frame[frame["split"].astype(str).str.lower() == split]
    seen: set[str] = set()
    out = []
    for row in frame.to_dict(orient="records"):
        key = str(row.get("context_id") or row["context"])
        if key in seen:
            continue
        seen.add(key)
        letter = str(row.get("correct_answer") or "").strip().lower()
        out.append({"context_id": key, "topic": str(row.get("topic") or ""), "context": str(row["context"]).strip(),
                    "answer": str(row.get(f"answer_{letter}") or "").strip()})
    return tuple(out)
