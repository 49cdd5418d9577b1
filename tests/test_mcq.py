"""The MCQ format (core.tasks.mcq_format), its structure checks (core.tasks.mcq_checks) and its cards
(gui.render.mcq_cards)."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from core import locale
from core.tasks import mcq_checks as m
from core.tasks.mcq_checks import REASON_CODES, mcqs_to_rows, summarize, validate_mcq
from core.tasks.mcq_format import MCQ, MCQ_ANSWER_PREFIX, MCQ_QUESTION_PREFIX, format_mcq, parse_mcq
from gui.render.mcq_cards import describe_reasons, render_mcq_html, render_printable_html

# the words of each structure reason, as the locale tables hold them
REASONS = {code: {lang: locale.text(f"mcq.reason.{code}", lang) for lang in locale.LANGS} for code in REASON_CODES}

QUESTION = "Kiểu dữ liệu nào dùng để lưu số thực trong Python?"
OPTIONS = ["int", "float", "str", "bool"]
CANONICAL = format_mcq(QUESTION, OPTIONS, "B")
EXPECTED = MCQ(
    question=QUESTION,
    options={"A": "int", "B": "float", "C": "str", "D": "bool"},
    answer="B",
)


def build(
    question: str | None = QUESTION,
    options: list[tuple[str, str]] | None = None,
    answer: str | None = "B",
) -> str:
    """Assemble MCQ text line by line, allowing deliberately broken pieces."""
    if options is None:
        options = list(zip("ABCD", OPTIONS))
    lines = []
    if question is not None:
        lines.append(f"Câu hỏi: {question}")
    lines += [f"{letter}. {text}".rstrip() for letter, text in options]
    if answer is not None:
        lines.append(f"Đáp án: {answer}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# format_mcq
# ---------------------------------------------------------------------------


def test_format_is_exact_canonical_text() -> None:
    assert CANONICAL == (
        "Câu hỏi: Kiểu dữ liệu nào dùng để lưu số thực trong Python?\n"
        "A. int\nB. float\nC. str\nD. bool\nĐáp án: B."
    )
    assert not CANONICAL.endswith("\n")
    assert CANONICAL.startswith(MCQ_QUESTION_PREFIX + " ")
    assert CANONICAL.splitlines()[-1].startswith(MCQ_ANSWER_PREFIX + " ")


@pytest.mark.parametrize("answer", ["b", " B ", "B.", "(B)"])
def test_format_normalises_answer(answer: str) -> None:
    assert format_mcq(QUESTION, OPTIONS, answer) == CANONICAL


def test_format_strips_own_letter_marker_and_newlines() -> None:
    text = format_mcq(f"  {QUESTION}  ", ["A. int", "B) float", "str", "bo\nol"], "B")
    assert "A. int\nB. float\nC. str\nD. bo ol" in text


@pytest.mark.parametrize(
    "question, options, answer",
    [
        (QUESTION, OPTIONS[:3], "B"),
        (QUESTION, OPTIONS + ["x"], "B"),
        (QUESTION, "abcd", "B"),
        ("  ", OPTIONS, "B"),
        (QUESTION, ["int", " ", "str", "bool"], "B"),
        (QUESTION, OPTIONS, "E"),
        (QUESTION, OPTIONS, ""),
    ],
)
def test_format_rejects_bad_input(question, options, answer) -> None:
    with pytest.raises(ValueError):
        format_mcq(question, options, answer)


@pytest.mark.parametrize("answer", list("ABCD"))
def test_round_trip(answer: str) -> None:
    text = format_mcq(QUESTION, OPTIONS, answer)
    parsed = parse_mcq(text)
    assert parsed.question == QUESTION
    assert parsed.options == dict(zip("ABCD", OPTIONS))
    assert parsed.answer == answer
    assert parsed.raw == text
    check = validate_mcq(text)
    assert check.valid and check.reasons == ()


def test_round_trip_multiline_question() -> None:
    stem = "Cho đoạn mã:\nfor i in range(3):\n    print(i)\nKết quả là gì?"
    text = format_mcq(stem, ["0 1 2", "1 2 3", "0 1 2 3", "Lỗi"], "A")
    parsed = parse_mcq(text)
    assert parsed.question == stem
    assert validate_mcq(parsed).valid


# ---------------------------------------------------------------------------
# parse_mcq: tolerated variants
# ---------------------------------------------------------------------------

VARIANTS = {
    "canonical": CANONICAL,
    "whitespace_blank_lines": (
        "\n\n   Câu hỏi:    " + QUESTION + "   \n\n  A.   int \nB.\tfloat\n\n"
        "C. str\r\nD. bool  \n\n  Đáp án:   B .  \n\n"
    ),
    "no_space_after_prefix": "Câu hỏi:" + QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐáp án:B.",
    "numbered_question": "Câu hỏi 1: " + QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐáp án: B",
    "cau_number": "Câu 1: " + QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐáp án: B",
    "cau_number_dot": "Câu 12. " + QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐáp án: B",
    "uppercase_prefix": "CÂU HỎI: " + QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐÁP ÁN: B",
    "no_prefix": QUESTION + "\nA. int\nB. float\nC. str\nD. bool\nĐáp án: B.",
    "paren_close": QUESTION + "\nA) int\nB) float\nC) str\nD) bool\nĐáp án: B",
    "colon": QUESTION + "\nA: int\nB: float\nC: str\nD: bool\nĐáp án: B",
    "dash": QUESTION + "\nA - int\nB - float\nC - str\nD - bool\nĐáp án: B",
    "parens": QUESTION + "\n(A) int\n(B) float\n(C) str\n(D) bool\nĐáp án: B",
    "lowercase_dot": QUESTION + "\na. int\nb. float\nc. str\nd. bool\nĐáp án: b",
    "lowercase_paren": QUESTION + "\na) int\nb) float\nc) str\nd) bool\nĐáp án: B",
    "bullets": QUESTION + "\n- A. int\n- B. float\n- C. str\n- D. bool\nĐáp án: B",
    "markdown_bold": (
        "**Câu 1:** " + QUESTION + "\n**A.** int\n**B.** float\n**C.** str\n**D.** bool\n"
        "**Đáp án:** B"
    ),
    "options_one_line": "Câu hỏi: " + QUESTION + "\nA. int B. float C. str D. bool\nĐáp án: B.",
    "options_on_question_line": "Câu hỏi: " + QUESTION + " A. int B. float C. str D. bool\nĐáp án: B.",
    "everything_one_line": "Câu hỏi: " + QUESTION + " A. int B. float C. str D. bool Đáp án: B.",
    "two_columns": "Câu hỏi: " + QUESTION + "\nA. int\t\tB. float\nC. str    D. bool\nĐáp án: B",
    "answer_no_colon": CANONICAL.replace("Đáp án: B.", "Đáp án B"),
    "answer_paren": CANONICAL.replace("Đáp án: B.", "Đáp án: (B)"),
    "answer_with_text": CANONICAL.replace("Đáp án: B.", "Đáp án: B. float"),
    "answer_lowercase": CANONICAL.replace("Đáp án: B.", "Đáp án: b"),
    "answer_dung_la": CANONICAL.replace("Đáp án: B.", "Đáp án đúng là B"),
    "answer_next_line": CANONICAL.replace("Đáp án: B.", "Đáp án:\nB"),
    "nfd": unicodedata.normalize("NFD", CANONICAL),
    "nbsp_zero_width": CANONICAL.replace("Câu hỏi: ", "Câu hỏi:\u00a0\u200b"),
    "leading_chatter_then_prefix": "Dưới đây là câu hỏi của bạn:\n" + CANONICAL,
    "explanation_before_answer": CANONICAL.replace(
        "Đáp án: B.", "Giải thích: float là số thực.\nĐáp án: B."
    ),
}


@pytest.mark.parametrize("text", VARIANTS.values(), ids=VARIANTS.keys())
def test_variant_parses_to_same_mcq(text: str) -> None:
    parsed = parse_mcq(text)
    assert parsed == EXPECTED
    assert parsed.raw == text  # raw is kept unchanged (and excluded from ==)
    assert validate_mcq(text).valid


def test_nfd_input_is_composed() -> None:
    nfd = unicodedata.normalize("NFD", CANONICAL)
    assert nfd != CANONICAL
    parsed = parse_mcq(nfd)
    assert parsed.question == unicodedata.normalize("NFC", QUESTION)
    assert unicodedata.is_normalized("NFC", parsed.question)


@pytest.mark.parametrize(
    "tail",
    [
        "\nCâu hỏi: Câu khác?\nA. 1\nB. 2\nC. 3\nD. 4\nĐáp án: D.",
        "\n\nCâu 2: Câu khác?\nA. 1\nB. 1\nĐáp án: E.",
        "\nGiải thích: float lưu số thực.\nA. lạc đề",
        " <|endoftext|> rác rác",
    ],
)
def test_text_after_first_mcq_is_ignored(tail: str) -> None:
    assert parse_mcq(CANONICAL + tail) == EXPECTED
    assert validate_mcq(CANONICAL + tail).valid


@pytest.mark.parametrize(
    "text",
    [
        # The model runs on into a second MCQ without writing an answer.
        build(answer=None) + "\nCâu hỏi: Câu khác?\nA. 1\nB. 2",
        build(answer=None) + "\nA. 1\nB. 2\nC. 3\nD. 4\nĐáp án: A.",
    ],
)
def test_second_mcq_without_answer_is_not_merged(text: str) -> None:
    parsed = parse_mcq(text)
    assert parsed.question == QUESTION
    assert parsed.options == EXPECTED.options
    assert parsed.answer is None


@pytest.mark.parametrize(
    "stem",
    [
        "Câu lệnh nào in ra màn hình?",  # starts with "Câu" but is no prefix
        "Đáp án nào sau đây đúng?",  # starts with "Đáp án" but is no answer line
        "Hãy chọn đáp án đúng: hàm nào in ra màn hình?",  # "đáp án đúng:" mid-stem
    ],
)
def test_stems_that_look_like_prefixes(stem: str) -> None:
    text = f"{stem}\nA. print()\nB. input()\nC. len()\nD. int()\nĐáp án: A."
    parsed = parse_mcq(text)
    assert parsed.question == stem
    assert parsed.answer == "A"
    assert validate_mcq(parsed).valid


def test_code_lines_in_unprefixed_stem_are_not_options() -> None:
    stem = "Cho đoạn mã:\n    a: int = 5\n    b - a\nGiá trị của a là?"
    parsed = parse_mcq(stem + "\nA. 5\nB. 0\nC. 1\nD. Lỗi\nĐáp án: A")
    assert parsed.question == stem
    assert list(parsed.options) == list("ABCD")


def test_option_text_with_inner_marker_is_not_split() -> None:
    text = build(options=[("A", "Lớp B. Cơ bản"), ("B", "x"), ("C", "y"), ("D", "z")])
    assert parse_mcq(text).options["A"] == "Lớp B. Cơ bản"


@pytest.mark.parametrize("value", ["", "   \n\n ", "rác", None, 42])
def test_parse_never_raises(value) -> None:
    parsed = parse_mcq(value)
    assert isinstance(parsed, MCQ)
    assert not validate_mcq(parsed).valid


@pytest.mark.parametrize(
    "answer_line, expected",
    [("Đáp án: 2", "2"), ("Đáp án: E", "E"), ("Đáp án: không có", "KHÔNG"), ("Đáp án:", None)],
)
def test_answer_as_written_uppercased(answer_line: str, expected: str | None) -> None:
    text = CANONICAL.replace("Đáp án: B.", answer_line)
    assert parse_mcq(text).answer == expected


# ---------------------------------------------------------------------------
# validate_mcq: reason codes
# ---------------------------------------------------------------------------

ABCD = list(zip("ABCD", OPTIONS))

INVALID = {
    "missing_option": (build(options=ABCD[:3]), {m.MISSING_OPTIONS}),
    "extra_option_e": (build(options=ABCD + [("E", "list")]), {m.EXTRA_OPTIONS}),
    "empty_option": (build(options=[*ABCD[:2], ("C", ""), ABCD[3]]), {m.EMPTY_OPTION}),
    "empty_option_paren": (
        CANONICAL.replace("C. str", "C)"),
        {m.EMPTY_OPTION},
    ),
    "duplicate_exact": (
        build(options=[*ABCD[:3], ("D", "int")]),
        {m.DUPLICATE_OPTIONS},
    ),
    "duplicate_case": (
        build(options=[*ABCD[:3], ("D", "INT")]),
        {m.DUPLICATE_OPTIONS},
    ),
    "duplicate_spacing": (
        build(options=[("A", "số  thực"), ("B", "Số thực"), *ABCD[2:]], answer="C"),
        {m.DUPLICATE_OPTIONS},
    ),
    "no_answer": (build(answer=None), {m.NO_ANSWER}),
    "answer_e": (build(answer="E"), {m.ANSWER_NOT_IN_ABCD}),
    "answer_digit": (build(answer="2"), {m.ANSWER_NOT_IN_ABCD}),
    "answer_without_option": (
        build(options=[*ABCD[:2], ABCD[3]], answer="C"),
        {m.MISSING_OPTIONS, m.ANSWER_OPTION_MISSING},
    ),
    "no_question": (build(question=None), {m.NO_QUESTION}),
    "empty_question_prefix": (build(question=""), {m.NO_QUESTION}),
}


@pytest.mark.parametrize(
    "text, expected", INVALID.values(), ids=INVALID.keys()
)
def test_invalid_kind_gives_its_reason(text: str, expected: set[str]) -> None:
    check = validate_mcq(text)
    assert not check.valid
    assert set(check.reasons) == expected
    assert check.mcq == parse_mcq(text)


def test_answer_without_option_isolated_on_an_mcq_object() -> None:
    mcq = MCQ(question="q", options={"A": "1", "B": "2", "C": "3", "D": "4"}, answer="B")
    broken = MCQ(question="q", options={"A": "1", "C": "3", "D": "4", "E": "5"}, answer="B")
    assert validate_mcq(mcq).valid
    assert set(validate_mcq(broken).reasons) == {
        m.MISSING_OPTIONS,
        m.EXTRA_OPTIONS,
        m.ANSWER_OPTION_MISSING,
    }


def test_multiple_reasons_at_once() -> None:
    text = "A. int\nB. \nC. int\nĐáp án: F"
    check = validate_mcq(text)
    assert check.reasons == (
        m.NO_QUESTION,
        m.MISSING_OPTIONS,
        m.EMPTY_OPTION,
        m.DUPLICATE_OPTIONS,
        m.ANSWER_NOT_IN_ABCD,
    )
    assert not check.valid


def test_reasons_follow_reason_codes_order() -> None:
    check = validate_mcq("")
    assert check.reasons == tuple(c for c in REASON_CODES if c in check.reasons)
    assert set(check.reasons) == {m.NO_QUESTION, m.MISSING_OPTIONS, m.NO_ANSWER}


def test_reason_constants_and_descriptions() -> None:
    constants = {name: getattr(m, name) for name in (
        "NO_QUESTION", "MISSING_OPTIONS", "EXTRA_OPTIONS", "EMPTY_OPTION",
        "DUPLICATE_OPTIONS", "NO_ANSWER", "ANSWER_NOT_IN_ABCD", "ANSWER_OPTION_MISSING",
    )}
    assert all(value == name.lower() for name, value in constants.items())
    assert set(constants.values()) == set(REASONS) == set(REASON_CODES)
    for code, text in REASONS.items():
        assert set(text) == {"en", "vi"}, code
        assert text["en"].strip() and text["vi"].strip(), code
    assert describe_reasons([m.NO_ANSWER], "en") == [REASONS[m.NO_ANSWER]["en"]]
    assert describe_reasons([m.NO_ANSWER], "fr") == [REASONS[m.NO_ANSWER]["vi"]]


# ---------------------------------------------------------------------------
# summarize
# ---------------------------------------------------------------------------


def test_summarize_counts() -> None:
    texts = [
        format_mcq(QUESTION, OPTIONS, "A"),
        format_mcq(QUESTION, OPTIONS, "B"),
        format_mcq(QUESTION, OPTIONS, "B"),
        build(answer="E"),  # invalid: answer E -> "other"
        build(answer=None),  # invalid: not counted in the distribution
        build(options=ABCD[:3], answer="D"),  # invalid: 2 reasons, key D
    ]
    s = summarize(texts)
    assert s["n"] == 6
    assert s["n_valid"] == 3
    assert s["validity_rate"] == pytest.approx(0.5)
    assert set(s["reason_counts"]) == set(REASON_CODES)
    assert s["reason_counts"][m.ANSWER_NOT_IN_ABCD] == 1
    assert s["reason_counts"][m.NO_ANSWER] == 1
    assert s["reason_counts"][m.MISSING_OPTIONS] == 1
    assert s["reason_counts"][m.ANSWER_OPTION_MISSING] == 1
    assert s["reason_counts"][m.DUPLICATE_OPTIONS] == 0
    assert s["answer_distribution"] == {"A": 1, "B": 2, "C": 0, "D": 1, "other": 1}
    assert json.loads(json.dumps(s)) == s


def test_summarize_empty() -> None:
    s = summarize([])
    assert s["n"] == 0 and s["n_valid"] == 0 and s["validity_rate"] == 0.0
    assert all(v == 0 for v in s["reason_counts"].values())
    json.dumps(s)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

EVIL = format_mcq(
    "<script>alert('x')</script> Thẻ nào?", ['<img src=x onerror="alert(1)">', "a & b", "c", "d"], "A"
)


@pytest.mark.parametrize("reveal", [False, True])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_card_escapes_untrusted_text(reveal: bool, lang: str) -> None:
    out = render_mcq_html(EVIL, reveal=reveal, lang=lang)
    assert "<script" not in out
    assert "<img" not in out
    assert "&lt;script&gt;" in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
    assert "a &amp; b" in out
    for cls in ("mcq-card", "mcq-question", "mcq-option"):
        assert f'class="{cls}' in out


@pytest.mark.parametrize("lang, summary", [("vi", "Xem đáp án"), ("en", "Show answer")])
def test_card_hides_answer_unless_reveal(lang: str, summary: str) -> None:
    hidden = render_mcq_html(CANONICAL, lang=lang)
    assert "mcq-correct" not in hidden
    assert f">{summary}</summary>" in hidden
    assert re.search(r"<details[^>]*\bopen\b", hidden) is None
    # The key lives inside the closed <details>, not in the visible options.
    options_part = hidden.split("<details", 1)[0]
    assert "✓" not in options_part

    shown = render_mcq_html(CANONICAL, reveal=True, lang=lang)
    assert re.search(r"<details[^>]*\bopen\b", shown)
    correct = re.findall(r'<li class="mcq-option mcq-correct"[^>]*>(.*?)</li>', shown)
    assert len(correct) == 1 and "float" in correct[0]


def test_card_accepts_mcq_object() -> None:
    assert render_mcq_html(parse_mcq(CANONICAL)) == render_mcq_html(CANONICAL)


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_invalid_card_lists_reasons_in_language(lang: str) -> None:
    text = build(options=ABCD[:3], answer=None)
    out = render_mcq_html(text, lang=lang)
    for code in (m.MISSING_OPTIONS, m.NO_ANSWER):
        assert REASONS[code][lang].split("(")[0].strip() in out
    other = "en" if lang == "vi" else "vi"
    assert REASONS[m.NO_ANSWER][other].split("(")[0].strip() not in out
    assert "mcq-invalid" in out
    assert "mcq-invalid" not in render_mcq_html(CANONICAL, lang=lang)


def test_unparseable_card_shows_escaped_raw() -> None:
    out = render_mcq_html("Đáp án: <b>?</b>", lang="en")
    assert "&lt;b&gt;" in out and "<b>" not in out


def test_printable_page_has_all_questions_and_key() -> None:
    items = [
        format_mcq("Câu hỏi một?", OPTIONS, "A"),
        parse_mcq(format_mcq("Câu hỏi hai?", OPTIONS, "C")),
        format_mcq("Câu hỏi ba <b>?", OPTIONS, "D"),
        build(question="Câu hỏi bốn?", answer=None),
    ]
    page = render_printable_html(items, title="Đề kiểm tra <Tin học 10>")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    assert "<title>Đề kiểm tra &lt;Tin học 10&gt;</title>" in page
    assert "@media print" in page
    for stem in ("Câu hỏi một?", "Câu hỏi hai?", "Câu hỏi ba &lt;b&gt;?", "Câu hỏi bốn?"):
        assert stem in page
    assert "<b>?" not in page
    for n in range(1, 5):
        assert f"Câu {n}." in page
    questions, key = page.split('class="answer-key"', 1)
    # No answers in the question part; all in the key, in order.
    assert "mcq-correct" not in questions
    cells = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td></tr>", key)
    assert cells == [("1", "A"), ("2", "C"), ("3", "D"), ("4", "—")]


def test_printable_page_english() -> None:
    page = render_printable_html([CANONICAL], title="Quiz", lang="en")
    assert '<html lang="en">' in page
    assert "Question 1." in page and "Answer key" in page


# ---------------------------------------------------------------------------
# CSV rows
# ---------------------------------------------------------------------------


def test_mcqs_to_rows() -> None:
    rows = mcqs_to_rows([CANONICAL, build(options=ABCD[:3], answer=None)])
    assert rows[0] == {
        "question": QUESTION,
        "A": "int",
        "B": "float",
        "C": "str",
        "D": "bool",
        "answer": "B",
        "valid": True,
        "reasons": "",
    }
    assert rows[1]["D"] == "" and rows[1]["answer"] == ""
    assert rows[1]["valid"] is False
    assert rows[1]["reasons"] == f"{m.MISSING_OPTIONS};{m.NO_ANSWER}"
    assert all(list(r) == list(m.CSV_COLUMNS) for r in rows)
