"""Quiz exports teachers import (core.tasks.quiz_export): every format is read back and compared with the items.

GIFT is read with a small escape-aware parser written here, Moodle XML with ElementTree, the spreadsheets with
openpyxl. The items carry what breaks naive exporters: GIFT's specials, XML's "&", "<" and "]]>", a backslash, a
text that looks like a spreadsheet formula, a code snippet over two lines, and a question past Kahoot's limit.
"""

from __future__ import annotations

import html
import io
import os
import re
import xml.etree.ElementTree as ET
from importlib.util import find_spec

import pytest

from core.tasks.quiz_export import (
    KAHOOT_ANSWER_MAX,
    KAHOOT_HEADER,
    KAHOOT_HEADER_ROW,
    KAHOOT_QUESTION_MAX,
    QUIZIZZ_HEADER,
    TOO_LONG,
    ExportWarning,
    QuizItem,
    to_gift,
    to_kahoot_xlsx,
    to_moodle_xml,
    to_quizizz_xlsx,
    write_gift,
    write_kahoot_xlsx,
    write_moodle_xml,
    write_quizizz_xlsx,
)

PARAGRAPH = "Trong Python, từ điển viết trong cặp ngoặc nhọn {khóa: giá trị}; phép so sánh bằng là ==, còn = là phép gán."
LONG_QUESTION = (
    "Theo đoạn văn về bộ nhớ trong của máy tính, khi người dùng tắt máy đột ngột trong lúc đang soạn thảo văn bản "
    "thì dữ liệu nào sẽ bị mất và vì sao điều đó xảy ra?"
)
LONG_OPTION = "Dữ liệu trong RAM, vì RAM chỉ lưu tạm dữ liệu và chương trình đang chạy, nội dung mất khi mất điện"


def items() -> list[QuizItem]:
    """Items with every hazard of the formats; the fourth is flagged."""
    return [
        QuizItem(
            paragraph=PARAGRAPH,
            question="Trong Python, {\"a\": 1} là gì? Dấu ~ và # có nghĩa gì: a = b?",
            options=("Một từ điển {khóa: giá trị}", "Một tập hợp ~ danh sách", "Phép gán a = 1", "Chú thích # dòng"),
            key="A",
        ),
        QuizItem(
            paragraph=PARAGRAPH,
            question="Chuỗi ']]>' và thẻ <b> trong XML & HTML được hiển thị thế nào?",
            options=("a < b & c > d", "]]>", "<![CDATA[x]]>", "Đường dẫn C:\\Users\\An\\bai_tap"),
            key="C",
        ),
        QuizItem(paragraph=PARAGRAPH, question=LONG_QUESTION, options=("RAM", "ROM", LONG_OPTION, "Thanh ghi"), key="C"),
        QuizItem(
            paragraph=PARAGRAPH,
            question="Đoạn chương trình sau in ra gì?\nprint(8 // 3)",
            options=("=A1+B1", "2", "2.67", "3"),
            key="B",
            status="flagged",
            reasons=("key_unsupported", "placeholder_options"),
        ),
    ]


# ---------------------------------------------------------------------------
# GIFT, read back with a parser written for the test
# ---------------------------------------------------------------------------

_GIFT_UNESCAPE = {"~": "~", "=": "=", "#": "#", "{": "{", "}": "}", ":": ":", "\\": "\\", "n": "\n"}


def _gift_tokens(text: str) -> list[tuple[str, bool]]:
    """(character, was_escaped) pairs."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _GIFT_UNESCAPE:
            out.append((_GIFT_UNESCAPE[text[i + 1]], True))
            i += 2
        else:
            out.append((text[i], False))
            i += 1
    return out


def parse_gift(text: str) -> list[dict]:
    """GIFT multiple-choice questions as {name, question, options: [(right, text)]}, comments skipped."""
    questions = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.split("\n") if not line.strip().startswith("//")]
        body = "\n".join(lines).strip()
        if not body or body.startswith("$CATEGORY:"):
            continue
        tokens = _gift_tokens(body)
        assert tokens[:2] == [(":", False), (":", False)], body
        end = next(i for i in range(2, len(tokens)) if tokens[i] == (":", False) and tokens[i + 1] == (":", False))
        name = "".join(c for c, _ in tokens[2:end])
        rest = tokens[end + 2:]
        opening = rest.index(("{", False))
        closing = rest.index(("}", False))
        stem = "".join(c for c, _ in rest[:opening]).strip()
        assert stem.startswith("[plain]")
        options, current = [], None
        for char, escaped in rest[opening + 1:closing]:
            if char in "=~" and not escaped:
                current = [char == "=", ""]
                options.append(current)
            elif current is not None:
                current[1] += char
        assert all(not escaped for c, escaped in rest[closing + 1:] if c.strip()) and not "".join(
            c for c, _ in rest[closing + 1:]).strip()
        questions.append({"name": name, "question": stem[len("[plain]"):].strip(),
                          "options": [(right, t.strip()) for right, t in options]})
    return questions


def test_gift_reads_back_as_the_items_with_every_special_character_escaped():
    quiz = items()
    parsed = parse_gift(to_gift(quiz, title="Kiểm tra 15 phút: Tin học 10", category="Tin học 10/Python"))
    assert [q["name"] for q in parsed] == ["Q1", "Q2", "Q3", "Q4"]
    for item, back in zip(quiz, parsed):
        assert back["question"] == item.question
        assert [t for _, t in back["options"]] == list(item.options)
        assert [right for right, _ in back["options"]] == [x == item.key for x in "ABCD"]


def test_gift_writes_a_title_comment_a_category_a_flag_comment_and_one_line_per_question():
    text = to_gift(items(), title="Kiểm tra 15 phút", category="Tin học 10")
    lines = text.split("\n")
    assert lines[0] == "// Kiểm tra 15 phút"
    assert "$CATEGORY: Tin học 10" in lines
    assert "// flagged: key_unsupported, placeholder_options" in lines
    assert "print(8 // 3)" not in lines  # the code line stays inside its question, as \n
    assert "::Q4::[plain]Đoạn chương trình sau in ra gì?\\nprint(8 // 3) {" in lines
    assert text.endswith("}\n")


def test_gift_can_put_the_paragraph_before_the_question():
    parsed = parse_gift(to_gift(items()[:1], include_paragraph=True))
    assert parsed[0]["question"] == PARAGRAPH + "\n\n" + items()[0].question


def test_write_gift_writes_utf8_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "quiz.gift.txt"
    assert write_gift(items(), path, title="Đề") == ()
    assert path.read_bytes().decode("utf-8") == to_gift(items(), title="Đề")
    assert os.listdir(tmp_path) == ["quiz.gift.txt"]


# ---------------------------------------------------------------------------
# Moodle XML, read back with ElementTree
# ---------------------------------------------------------------------------


def html_text(fragment: str) -> str:
    """The plain text of our HTML: paragraphs → blank lines, <br> → newline, entities decoded."""
    fragment = fragment.replace("</p><p>", "\n\n").replace("<br>", "\n")
    return html.unescape(re.sub(r"</?p>", "", fragment))


def test_moodle_xml_is_valid_and_reads_back_as_the_items():
    quiz = items()
    root = ET.fromstring(to_moodle_xml(quiz, category="Tin học 10").encode("utf-8"))
    assert root.tag == "quiz"
    assert root[0].get("type") == "category"
    assert root[0].findtext("category/text") == "$course$/top/Tin học 10"
    questions = root.findall("question[@type='multichoice']")
    assert len(questions) == len(quiz)
    for item, question in zip(quiz, questions):
        assert question.find("questiontext").get("format") == "html"
        assert html_text(question.findtext("questiontext/text")) == item.question
        answers = question.findall("answer")
        assert [html_text(a.findtext("text")) for a in answers] == list(item.options)
        right = [a for a in answers if a.get("fraction") == "100"]
        assert len(right) == 1 and html_text(right[0].findtext("text")) == item.right
        assert all(a.get("fraction") == "0" for a in answers if a is not right[0])
        assert question.findtext("single") == "true"
        assert question.findtext("shuffleanswers") == "true"
        assert question.findtext("answernumbering") == "ABCD"
        assert question.findtext("name/text").startswith(f"Q{quiz.index(item) + 1}")


def test_moodle_xml_keeps_cdata_closers_and_markup_as_typed():
    text = to_moodle_xml(items()[1:2])
    assert "<b>" not in text  # escaped inside the CDATA, so Moodle shows it instead of rendering it
    answer = ET.fromstring(text).findall("question/answer")[1]
    assert html_text(answer.findtext("text")) == "]]>"


def test_moodle_xml_tags_a_flagged_item_with_its_reasons():
    questions = ET.fromstring(to_moodle_xml(items())).findall("question")
    assert questions[0].find("tags") is None
    assert [t.text for t in questions[3].findall("tags/tag/text")] == [
        "flagged", "key_unsupported", "placeholder_options"]


def test_moodle_xml_can_include_the_paragraph_and_keep_the_option_order(tmp_path):
    root = ET.fromstring(to_moodle_xml(items()[:1], include_paragraph=True, shuffle_answers=False))
    question = root.find("question")
    assert html_text(question.findtext("questiontext/text")) == PARAGRAPH + "\n\n" + items()[0].question
    assert question.findtext("shuffleanswers") == "false"
    path = tmp_path / "sub" / "quiz.xml"
    assert write_moodle_xml(items(), path) == ()
    ET.parse(path)


# ---------------------------------------------------------------------------
# Spreadsheets, read back with openpyxl
# ---------------------------------------------------------------------------


# The spreadsheets need openpyxl (a requirement of the app); GIFT and Moodle XML do not.
needs_openpyxl = pytest.mark.skipif(find_spec("openpyxl") is None, reason="openpyxl is not installed")


def sheet_of(content: bytes):
    import openpyxl

    return openpyxl.load_workbook(io.BytesIO(content)).active


def rows_of(content: bytes) -> list[list]:
    sheet = sheet_of(content)
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@needs_openpyxl
def test_kahoot_sheet_has_the_template_layout_and_reads_back_as_the_items():
    quiz = items()
    content, _ = to_kahoot_xlsx(quiz, title="Kiểm tra 15 phút", time_limit=20)
    rows = rows_of(content)
    assert rows[1][1] == "Kiểm tra 15 phút"
    assert tuple(rows[KAHOOT_HEADER_ROW - 1][1:8]) == KAHOOT_HEADER[1:]
    data = rows[KAHOOT_HEADER_ROW:]
    assert len(data) == len(quiz)
    for number, (item, row) in enumerate(zip(quiz, data), start=1):
        assert row[:8] == [number, item.question, *item.options, 20, "ABCD".index(item.key) + 1]


@needs_openpyxl
def test_kahoot_reports_texts_over_its_limits_and_keeps_them_whole():
    content, warnings = to_kahoot_xlsx(items())
    assert len(LONG_QUESTION) > KAHOOT_QUESTION_MAX and len(LONG_OPTION) > KAHOOT_ANSWER_MAX
    assert warnings == (
        ExportWarning(3, "question", TOO_LONG, KAHOOT_QUESTION_MAX, len(LONG_QUESTION)),
        ExportWarning(3, "C", TOO_LONG, KAHOOT_ANSWER_MAX, len(LONG_OPTION)),
    )
    assert rows_of(content)[KAHOOT_HEADER_ROW + 2][1] == LONG_QUESTION


def test_kahoot_refuses_a_time_limit_it_does_not_offer():
    with pytest.raises(ValueError, match="time_limit"):
        to_kahoot_xlsx(items(), time_limit=45)


@needs_openpyxl
def test_quizizz_sheet_has_its_header_and_reads_back_as_the_items():
    quiz = items()
    content, warnings = to_quizizz_xlsx(quiz, time_limit=45)
    assert warnings == ()
    rows = rows_of(content)
    assert tuple(rows[0]) == QUIZIZZ_HEADER
    assert len(rows) == 1 + len(quiz)
    for item, row in zip(quiz, rows[1:]):
        record = dict(zip(QUIZIZZ_HEADER, row))
        assert record["Question Text"] == item.question
        assert record["Question Type"] == "Multiple Choice"
        assert [record[f"Option {n}"] for n in range(1, 5)] == list(item.options)
        assert record["Option 5"] is None
        assert record["Correct Answer"] == "ABCD".index(item.key) + 1
        assert record["Time in seconds"] == 45
        assert record["Image Link"] is None


@needs_openpyxl
def test_a_text_that_looks_like_a_formula_stays_text():
    sheet = sheet_of(to_quizizz_xlsx(items())[0])
    cell = sheet.cell(row=5, column=3)
    assert (cell.value, cell.data_type) == ("=A1+B1", "s")


@needs_openpyxl
def test_spreadsheet_writers_return_the_warnings_and_replace_the_file_whole(tmp_path):
    kahoot, quizizz = tmp_path / "kahoot.xlsx", tmp_path / "quizizz.xlsx"
    kahoot.write_bytes(b"old")
    assert write_kahoot_xlsx(items(), kahoot) == to_kahoot_xlsx(items())[1]
    assert write_quizizz_xlsx(items(), quizizz, time_limit=60) == ()
    assert rows_of(kahoot.read_bytes())[KAHOOT_HEADER_ROW][1] == items()[0].question
    assert rows_of(quizizz.read_bytes())[1][8] == 60
    assert sorted(os.listdir(tmp_path)) == ["kahoot.xlsx", "quizizz.xlsx"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "quiz.xml"
    path.write_text("old", encoding="utf-8")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_moodle_xml(items(), path)
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["quiz.xml"]


# ---------------------------------------------------------------------------
# QuizItem
# ---------------------------------------------------------------------------


def test_a_quiz_item_stores_options_as_a_tuple_and_knows_its_answer():
    item = QuizItem(paragraph="", question="Câu hỏi?", options=["a", "b", "c", "d"], key="D")
    assert item.options == ("a", "b", "c", "d")
    assert (item.answer_index, item.right) == (4, "d")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"options": ("a", "b", "c")}, "4 options"),
        ({"key": "E"}, "key"),
        ({"status": "rejected"}, "status"),
        ({"question": "  "}, "question"),
    ],
)
def test_a_malformed_quiz_item_is_refused_naming_the_field(changes, message):
    fields = {"paragraph": "", "question": "Câu hỏi?", "options": ("a", "b", "c", "d"), "key": "A", **changes}
    with pytest.raises(ValueError, match=message):
        QuizItem(**fields)
