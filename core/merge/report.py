"""The merge report as data: what was merged onto what, and how close each target came to base + adapter.

Numbers and codes only (``reference``, ``notes`` as ``{"code", "args"}``); :mod:`core.merge.markdown` puts
them into words. Written as ``merge_report.json`` next to the merged model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.run import read_json, write_json_atomic

REPORT_JSON = "merge_report.json"
REPORT_MD = "merge_report.md"
TARGETS = ("original", "dequantized", "4bit")
ONTO = ("auto",) + TARGETS
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TargetResult:
    """How close one merge target comes to the adapter as trained."""

    target: str
    dtype: str
    lossy: bool
    saved: bool
    measured_from: str  # "saved folder" (reloaded with stock transformers) | "memory"
    max_abs_dlogit: float
    mean_abs_dlogit: float
    kl_mean: float
    kl_max: float
    greedy_agreement: float
    first_divergence: list[int | None]
    identical_generations: int
    tolerance_dtype: str
    tolerance: dict
    passed: bool
    seconds: float = 0.0

    @property
    def n_prompts(self) -> int:
        return len(self.first_divergence)


@dataclass
class MergeReport:
    """What was merged onto what, and how close the merged model comes to base + adapter.

    ``reference`` is a code: ``as_trained`` (the base as training held it), ``float32_base`` (a run on 16-bit
    weights: the base in float32) or ``float32_unquantized`` (QLoRA on 16-bit weights: the 4-bit layers as
    trained, the rest in float32); ``reference_args`` fills its words.
    """

    run_dir: str
    out_dir: str
    adapter_dir: str
    adapter_sha256: str
    base_model: str
    resolved_base_model: str
    quantized_run: bool
    trained_on: str  # English, for readers of the JSON file; the words come from ``precision``
    requested_onto: str
    target: str
    dtype: str
    reference: str
    prompts: dict
    results: dict[str, TargetResult]
    notes: list = field(default_factory=list)  # {"code", "args"} (older reports: English sentences)
    files: list[str] = field(default_factory=list)
    precision: dict = field(default_factory=dict)  # how the base was held in training
    created: str = ""
    seconds: float = 0.0
    versions: dict = field(default_factory=dict)
    already_merged: bool = False
    reference_args: dict = field(default_factory=dict)

    @property
    def chosen(self) -> TargetResult:
        return self.results[self.target]

    @property
    def passed(self) -> bool:
        """The saved target is within its tolerance of the adapter as trained."""
        return self.chosen.passed

    @property
    def lossy(self) -> bool:
        """The saved target is, by choice, not the adapter as trained (4bit, or original after QLoRA)."""
        return self.chosen.lossy

    @property
    def verdict(self) -> str:
        """passed | lossy | failed: the code of the badge and of the CLI's exit status."""
        return "lossy" if self.lossy else ("passed" if self.passed else "failed")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"], d["lossy"] = self.passed, self.lossy
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MergeReport":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        tr_names = {f.name for f in fields(TargetResult)}
        kw["results"] = {k: TargetResult(**{a: b for a, b in v.items() if a in tr_names})
                         for k, v in d.get("results", {}).items()}
        return cls(**kw)

    def write_json(self, folder: Path) -> None:
        write_json_atomic(Path(folder) / REPORT_JSON, self.to_dict())


def load_report(folder: str | Path) -> dict | None:
    """The merge report saved in a merged folder, or None when there is none (or it is unreadable)."""
    return read_json(Path(folder) / REPORT_JSON)
