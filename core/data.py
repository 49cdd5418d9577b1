"""Datasets: load, recognise the schema, map columns, clean, format, tokenize, filter, split.

A row goes through: raw columns → roles (``column_map``) → cleaned → template → text with loss
spans → token ids with labels (-100 outside the loss spans). :func:`prepare` does all of it and
returns what the trainer needs plus the statistics the GUI shows.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from core import locale, tasks
from core.config import DataConfig
from core.errors import DataError
from core.paths import SAMPLES_DIR
from core.tasks import format_row, resolve_template
from core.templates import Formatted, TemplateContext

log = logging.getLogger(__name__)

SAMPLES = {
    "vi_informatics_mcq": "vi_informatics_mcq.jsonl",
    "informatics_book": "informatics_book.jsonl",
    "books_price": "books_price.jsonl",
}
FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")

# Column-name synonyms per role, most specific first; matched case-insensitively.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "question": ("question", "câu_hỏi", "cau_hoi", "questions"),
    "answer_a": ("answer_a", "option_a", "choice_a", "a"),
    "answer_b": ("answer_b", "option_b", "choice_b", "b"),
    "answer_c": ("answer_c", "option_c", "choice_c", "c"),
    "answer_d": ("answer_d", "option_d", "choice_d", "d"),
    "correct_answer": ("correct_answer", "answer_key", "answer", "key", "label", "đáp_án", "dap_an"),
    "context": ("context", "para", "new_contexts", "passage", "paragraph", "content", "đoạn_văn"),
    "title": ("title", "name", "heading"),
    "instruction": ("instruction", "prompt_instruction"),
    "input": ("input",),
    "output": ("output", "response"),
    "messages": ("messages", "conversations"),
    "description": ("description", "desc", "details"),
    "price": ("price", "cost"),
    "text": ("text", "content", "body"),
}
SCHEMA_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # schema: (required roles, optional roles)
    "chat": (("messages",), ()),
    "mcq": (("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "context"), ()),
    "alpaca": (("instruction", "output"), ("input",)),
    "price": (("price",), ("title", "description")),
    "cpt": (("context",), ("title",)),
    "text": (("text",), ()),
}


# --------------------------------------------------------------------------- loading

def resolve_source(source: str) -> Path | str:
    """A bundled sample or a local file → its Path; anything else is taken as a Hub dataset id."""
    source = source.strip()
    if source.startswith("sample:"):
        name = source.removeprefix("sample:")
        if name not in SAMPLES:
            raise DataError(f"unknown sample {name!r} (bundled: {', '.join(SAMPLES)})", field="data.source")
        return SAMPLES_DIR / SAMPLES[name]
    path = Path(source).expanduser()
    if looks_like_file(source):
        if not path.exists():
            raise DataError(f"data file not found: {source}", field="data.source")
        return path
    return source


def looks_like_file(source: str) -> bool:
    """A data.source that names a file (by its suffix, a path prefix, or because it exists), not a Hub id."""
    source = source.strip()
    return (Path(source).suffix.lower() in FILE_SUFFIXES or source.startswith((".", "/", "~", "\\"))
            or Path(source).expanduser().exists())


def contained_source(source: str, roots: Iterable[str | Path]) -> str:
    """A data.source that may be read on behalf of someone else (the GUI's API): a bundled sample, a Hub id, or a
    file inside one of ``roots`` (the upload folder, folders allowed at launch). Links and ``..`` are resolved
    first, so that nothing escapes its folder.

    Raises:
        DataError: naming the file and the folders it may come from.
    """
    source = (source or "").strip()
    if not source or source.startswith("sample:") or not looks_like_file(source):
        return source
    path = Path(source).expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if not any(path == r or r in path.parents for r in allowed):
        where = ", ".join(str(r) for r in allowed) or "(none)"
        raise DataError(f"the data file {source!r} is outside the folders this app may read ({where}); upload it "
                        "instead", field="data.source")
    return str(path)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV / JSON / JSONL / Parquet file into a DataFrame, with errors that name the file."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file", field="data.source")
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"unsupported file type {suffix or '(none)'} for {path.name}; use "
                        f"{', '.join(FILE_SUFFIXES)}", field="data.source")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}", field="data.source")
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".jsonl":
            df = pd.DataFrame(_read_jsonl(path))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {"data": [...]} or {"train": [...]}
                lists = [v for v in data.values() if isinstance(v, list)]
                data = lists[0] if len(lists) == 1 else data
            if not isinstance(data, list):
                raise DataError(f"{path.name}: expected a list of records, got {type(data).__name__}",
                                field="data.source")
            bad = next((i for i, row in enumerate(data) if not isinstance(row, dict)), None)
            if bad is not None:
                raise DataError(f"{path.name} item {bad + 1}: expected a record (an object with column names), got "
                                f"{type(data[bad]).__name__} {str(data[bad])[:40]!r}; a data file is a list of "
                                "records", field="data.source")
            df = pd.DataFrame(data)
    except DataError:
        raise
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0][:200]}", field="data.source") from None
    except Exception as e:  # pyarrow raises its own types for a corrupt parquet file
        if type(e).__module__.startswith("pyarrow"):
            raise DataError(f"cannot read {path}: {str(e).splitlines()[0][:200]}", field="data.source") from None
        raise
    if df.empty or len(df.columns) == 0:
        raise DataError(f"data file has no rows: {path}", field="data.source")
    return df


def iter_jsonl(path: Path, field: str = "data.source"):
    """(line number, object) for each non-blank line of a JSONL file; a line that is not a JSON object is an error
    naming the file, the line and ``field``."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path.name} line {lineno}: invalid JSON ({e.msg})", field=field) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path.name} line {lineno}: expected an object, got {type(obj).__name__}",
                                field=field)
            yield lineno, obj


def _read_jsonl(path: Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def load_hub_dataset(dataset_id: str, split: str = "train") -> pd.DataFrame:
    """Load a Hugging Face Hub dataset split; a clear error when offline or unknown."""
    import datasets  # heavy import, only for this path

    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFoundError…)
        kind = type(e).__name__
        msg = str(e).splitlines()[0][:200] if str(e) else kind
        raise DataError(f"cannot load Hub dataset {dataset_id!r} (split {split!r}): {kind}: {msg}. "
                        "If you are offline, use a local file or a bundled sample:…", field="data.source") from None
    return ds.to_pandas()


def load_frame(cfg: DataConfig) -> pd.DataFrame:
    """Load ``cfg.source`` (sample, file or Hub id) as a DataFrame."""
    resolved = resolve_source(cfg.source)
    if isinstance(resolved, Path):
        return read_table(resolved)
    return load_hub_dataset(resolved, cfg.hub_split)


# --------------------------------------------------------------------------- schema

@dataclass
class SchemaGuess:
    """The detected schema and its mapping ``role → column``."""

    schema: str
    column_map: dict[str, str]
    columns: list[str]

    def describe(self, lang: str = "en") -> str:
        """The schema in words (``dataset.schema.<schema>`` of the locale table)."""
        key = f"dataset.schema.{self.schema}"
        return locale.text(key, lang) if locale.has(key) else self.schema


def _match(columns: Iterable[str], role: str, taken: set[str]) -> str | None:
    lower = {c.lower().strip(): c for c in columns if c not in taken}
    for name in SYNONYMS[role]:
        if name in lower:
            return lower[name]
    return None


def detect_schema(columns: Iterable[str], column_map: dict[str, str] | None = None) -> SchemaGuess:
    """Recognise the users' schemas from column names; explicit ``column_map`` entries win.

    Raises:
        DataError: when a mapped column does not exist, or no schema fits.
    """
    columns = list(columns)
    explicit = dict(column_map or {})
    for role, col in explicit.items():
        if col not in columns:
            raise DataError(f"mapped column {col!r} (for {role}) is not in the data; columns: "
                            f"{', '.join(columns)}", field=f"data.column_map.{role}")
    for schema, (required, optional) in SCHEMA_ROLES.items():
        mapping, taken = {}, set(explicit.values())
        for role in required + optional:
            col = explicit.get(role) or _match(columns, role, taken)
            if col:
                mapping[role] = col
                taken.add(col)
        if all(r in mapping for r in required):
            if schema == "price" and not ({"title", "description"} & mapping.keys()):
                continue
            return SchemaGuess(schema, mapping, columns)
    raise DataError(f"no known schema fits the columns {', '.join(columns)}; map them in data.column_map "
                    "(e.g. question, answer_a…answer_d, correct_answer, context)", field="data.column_map")


def check_columns(guess: SchemaGuess, template: str) -> None:
    """Every role the chosen template needs must be mapped."""
    needs = tasks.get(template).needs
    missing = [r for r in needs if r not in guess.column_map]
    if missing:
        raise DataError(f"the {template} template needs column(s) {', '.join(missing)}, which the data lacks "
                        f"(columns: {', '.join(guess.columns)})", field="data.column_map")


# --------------------------------------------------------------------------- cleaning

_BLANKS = re.compile(r"\n\s*\n(\s*\n)+")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean_text(text: str) -> str:
    """NFC-normalise (Vietnamese may arrive decomposed), strip, collapse spaces and blank-line runs."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


_LETTERS = "ABCD"


def normalise_key(value: Any, options: list[str] | None = None) -> str:
    """An answer key as a letter A–D: accepts 'b', 'B.', 'Đáp án B', 1-based 1–4, or the option's text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError("answer key is empty", field="correct_answer")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        i = int(value)
        if 1 <= i <= 4:
            return _LETTERS[i - 1]
    s = unicodedata.normalize("NFC", str(value)).strip()
    m = re.fullmatch(r"(?:đáp án\s*:?\s*)?\(?([A-Da-d])\)?[.):]?", s, flags=re.IGNORECASE)
    if m:
        return m.group(1).upper()
    if s.isdigit() and 1 <= int(s) <= 4:
        return _LETTERS[int(s) - 1]
    if options:
        for letter, opt in zip(_LETTERS, options):
            if s.casefold() == str(opt).strip().casefold():
                return letter
    raise DataError(f"answer key {value!r} is not one of A, B, C, D", field="correct_answer")


def map_row(raw: dict, guess: SchemaGuess, clean: bool) -> dict:
    """Raw row → role-keyed row (cleaned; MCQ keys normalised to a letter)."""
    row: dict[str, Any] = {}
    for role, col in guess.column_map.items():
        value = raw.get(col)
        if isinstance(value, str) and clean:
            value = clean_text(value)
        row[role] = value
    if guess.schema == "mcq" and "correct_answer" in row:
        row["correct_answer"] = normalise_key(row["correct_answer"], [row.get(f"answer_{x}") for x in "abcd"])
    if "messages" in row and hasattr(row["messages"], "tolist"):  # numpy array from parquet
        row["messages"] = [dict(m) for m in row["messages"].tolist()]
    return row


# --------------------------------------------------------------------------- tokenizing

@dataclass
class Example:
    """One tokenized training example; ``labels`` is -100 where no loss is computed."""

    input_ids: list[int]
    labels: list[int]
    n_tokens: int  # before truncation
    index: int  # row index in the source frame


def template_context(tokenizer, cfg: DataConfig) -> TemplateContext:
    chat = None
    if cfg.use_chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("data.use_chat_template is on, but this model's tokenizer has no chat template",
                            field="data.use_chat_template")
        chat = tokenizer.apply_chat_template
    return TemplateContext(eos_token=tokenizer.eos_token or "", bos_token=tokenizer.bos_token,
                           chat=chat, system_prompt=cfg.system_prompt)


def tokenize(formatted: Formatted, tokenizer, completion_only: bool) -> tuple[list[int], list[int]]:
    """Token ids and labels of a formatted text; a token is learned when it starts inside a loss span.

    The text may already begin with BOS (chat templates write it): then no second BOS is added.
    """
    text = formatted.text
    add_special = not (tokenizer.bos_token and text.startswith(tokenizer.bos_token))
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if not completion_only or not formatted.loss_spans:
        return ids, list(ids)
    labels = []
    for tok, (start, end) in zip(ids, enc["offset_mapping"]):
        inside = end > start and any(a <= start < b for a, b in formatted.loss_spans)
        labels.append(tok if inside else -100)
    return ids, labels


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a generation prompt, with BOS added unless the text already starts with it."""
    add_special = not (tokenizer.bos_token and text.startswith(tokenizer.bos_token))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def loss_segments(formatted: Formatted, completion_only: bool) -> list[tuple[str, bool]]:
    """The text cut into (piece, learned?) runs, for the GUI's highlighted preview."""
    text = formatted.text
    if not completion_only or not formatted.loss_spans:
        return [(text, True)]
    out, pos = [], 0
    for a, b in sorted(formatted.loss_spans):
        if a > pos:
            out.append((text[pos:a], False))
        out.append((text[a:b], True))
        pos = b
    if pos < len(text):
        out.append((text[pos:], False))
    return out


# --------------------------------------------------------------------------- the pipeline

@dataclass
class TokenStats:
    n: int
    min: int
    mean: float
    median: float
    p95: int
    max: int
    n_truncated: int  # longer than max_length (cut)
    n_filtered: int  # dropped by min_tokens / max_tokens
    max_length: int
    n_no_loss: int = 0  # dropped: the learned part starts beyond max_length
    n_answer_cut: int = 0  # kept, but the learned part runs past max_length: the end of the answer is cut

    @property
    def suggested_max_length(self) -> int:
        """The longest row, rounded up to a multiple of 64: a max_length that cuts nothing."""
        return -(-self.max // 64) * 64

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def token_stats(lengths: list[int], max_length: int, n_filtered: int = 0, n_no_loss: int = 0,
                n_answer_cut: int = 0) -> TokenStats:
    if not lengths:
        return TokenStats(0, 0, 0.0, 0.0, 0, 0, 0, n_filtered, max_length, n_no_loss, n_answer_cut)
    s = sorted(lengths)
    mid = len(s) // 2
    median = float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    p95 = s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]
    return TokenStats(len(s), s[0], sum(s) / len(s), median, p95, s[-1],
                      sum(1 for x in s if x > max_length), n_filtered, max_length, n_no_loss, n_answer_cut)


@dataclass
class PreparedData:
    """Everything training and the GUI need from a dataset."""

    frame: pd.DataFrame
    guess: SchemaGuess
    template: str
    train: list[Example]
    validation: list[Example]
    test_index: list[int]  # rows of a held-out split ("test") in the source, never trained on
    stats: TokenStats
    lengths: list[int] = field(default_factory=list)  # every row's token count, for the histogram

    @property
    def n_train_tokens(self) -> int:
        return sum(min(len(e.input_ids), self.stats.max_length) for e in self.train)


def split_column(frame: pd.DataFrame) -> str | None:
    for name in ("split", "Split", "subset"):
        if name in frame.columns:
            return name
    return None


def holdout_mask(frame: pd.DataFrame) -> list[bool]:
    """True for rows of a held-out split (test / validation) named in the data itself."""
    col = split_column(frame)
    if col is None:
        return [False] * len(frame)
    return [str(v).strip().lower() not in ("train", "training", "") for v in frame[col]]


def _group_split(indices: list[int], groups: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split that keeps rows sharing a group (context) on the same side."""
    if fraction <= 0 or len(indices) < 2:
        return indices, []
    keys = sorted(set(groups))
    rng = random.Random(seed)
    rng.shuffle(keys)
    n_val = max(1, round(fraction * len(keys))) if len(keys) > 1 else 0
    val_keys = set(keys[:n_val])
    train = [i for i, g in zip(indices, groups) if g not in val_keys]
    val = [i for i, g in zip(indices, groups) if g in val_keys]
    return train, val


def prepare(cfg: DataConfig, tokenizer, *, seed: int = 42, frame: pd.DataFrame | None = None) -> PreparedData:
    """Load (unless ``frame`` is given), map, clean, format, tokenize, filter and split.

    Args:
        cfg: the data section of the run config.
        tokenizer: the model's tokenizer.
        seed: seed of the validation split.
        frame: an already loaded frame (the GUI passes what it previewed).
    Returns:
        PreparedData with train and validation examples and token statistics.
    Raises:
        DataError: naming the file, column or row at fault.
    """
    if frame is None:
        frame = load_frame(cfg)
    guess = detect_schema(frame.columns, cfg.column_map)
    template = resolve_template(cfg.template, guess.schema)
    check_columns(guess, template)
    ctx = template_context(tokenizer, cfg)
    held_out = holdout_mask(frame)
    records = frame.to_dict(orient="records")

    examples: list[Example] = []
    lengths: list[int] = []
    n_filtered = n_no_loss = n_answer_cut = 0
    test_index = []
    for i, raw in enumerate(records):
        if held_out[i]:
            test_index.append(i)
            continue
        try:
            formatted = format_row(map_row(raw, guess, cfg.clean), template, ctx)
        except DataError as e:
            raise DataError(f"row {i + 1}: {e}", field=e.field) from None
        ids, labels = tokenize(formatted, tokenizer, cfg.completion_only_loss)
        lengths.append(len(ids))
        if (cfg.min_tokens and len(ids) < cfg.min_tokens) or (cfg.max_tokens and len(ids) > cfg.max_tokens):
            n_filtered += 1
            continue
        if all(label == -100 for label in labels[: cfg.max_length]):
            n_no_loss += 1  # truncation would cut away everything that is learned
            continue
        if any(label != -100 for label in labels[cfg.max_length:]):
            n_answer_cut += 1  # trained on an answer that stops short (e.g. without its answer key)
        examples.append(Example(ids, labels, len(ids), i))
    if not examples and n_no_loss:
        raise DataError(f"data.max_length={cfg.max_length} is too short: in all {n_no_loss} rows the answer starts "
                        f"after token {cfg.max_length} (longest row: {max(lengths)} tokens); raise data.max_length",
                        field="data.max_length")
    if not examples:
        raise DataError(f"no training rows left in {cfg.source} after the split and the token filter "
                        f"(min_tokens={cfg.min_tokens}, max_tokens={cfg.max_tokens})", field="data.source")

    groups = [str(records[e.index].get(guess.column_map.get("context", ""), e.index)) for e in examples]
    train_idx, val_idx = _group_split(list(range(len(examples))), groups, cfg.validation_fraction, seed)
    train = [examples[j] for j in train_idx]
    if cfg.max_samples:
        train = train[: cfg.max_samples]
    validation = [examples[j] for j in val_idx]
    stats = token_stats(lengths, cfg.max_length, n_filtered, n_no_loss, n_answer_cut)
    return PreparedData(frame, guess, template, train, validation, test_index, stats, lengths)


def to_hf_dataset(examples: list[Example]):
    """The pre-tokenized ``datasets.Dataset`` that trl's SFTTrainer accepts as is."""
    import datasets

    return datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                                       "labels": [e.labels for e in examples]})


def format_preview(frame: pd.DataFrame, index: int, cfg: DataConfig, tokenizer) -> tuple[Formatted, list]:
    """The exact training text of one row and its learned/not-learned segments."""
    if not 0 <= index < len(frame):
        raise DataError(f"row {index} is out of range (0–{len(frame) - 1})", field="row")
    guess = detect_schema(frame.columns, cfg.column_map)
    template = resolve_template(cfg.template, guess.schema)
    check_columns(guess, template)
    raw = frame.iloc[index].to_dict()
    formatted = format_row(map_row(raw, guess, cfg.clean), template, template_context(tokenizer, cfg))
    return formatted, loss_segments(formatted, cfg.completion_only_loss)
