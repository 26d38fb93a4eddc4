"""Loaders: each file type, .jsonl field maps, file discovery and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.errors import RetrievalError
from agentflow.retrieval.loaders import FieldMap, discover, html_to_markdown, load

from .retrieval_helpers import write_pdf


def test_text_and_markdown_files_load_with_titles(corpus: Path) -> None:
    (txt,) = load(corpus / "solar.txt", root=corpus)
    assert (txt.source, txt.file, txt.title, txt.format) == (
        "solar.txt",
        "solar.txt",
        "solar",
        "text",
    )
    assert "Jupiter is the largest planet" in txt.text
    (md,) = load(corpus / "guide.md", root=corpus)
    assert (md.title, md.format) == ("Agentflow Guide", "markdown")


def test_html_keeps_visible_text_with_markdown_headings(corpus: Path) -> None:
    (doc,) = load(corpus / "kitchen.html", root=corpus)
    assert doc.title == "Bread Baking"
    assert "## Kneading" in doc.text and "# Bread Baking" in doc.text
    assert "Sourdough bread rises" in doc.text
    for hidden in ("console.log", "color: red", "Home | Recipes"):
        assert hidden not in doc.text


def test_html_without_title_takes_the_first_heading() -> None:
    text, title = html_to_markdown("<body><h1>Only Heading</h1><p>Body text.</p></body>")
    assert title == "Only Heading"
    assert text == "# Only Heading\n\nBody text."


def test_pdf_pages_are_joined_and_remembered(tmp_path: Path) -> None:
    path = write_pdf(
        tmp_path / "bio.pdf",
        ["Photosynthesis feeds plants.", "Respiration (cellular)."],
        title="Bio Notes",
    )
    (doc,) = load(path, root=tmp_path)
    assert doc.title == "Bio Notes" and doc.format == "pdf"
    assert doc.text.split("\f") == ["Photosynthesis feeds plants.", "Respiration (cellular)."]
    assert doc.pages == [0, len("Photosynthesis feeds plants.") + 1]


def test_jsonl_records_become_documents_through_the_field_map(corpus: Path) -> None:
    fields = FieldMap.parse("text=abstract,title=title,id=doc_id")
    docs = load(corpus / "papers.jsonl", root=corpus, field_map=fields)
    assert [d.source for d in docs] == ["papers.jsonl#101", "papers.jsonl#102", "papers.jsonl#103"]
    assert (
        docs[0].text == "Vitamin D increases calcium absorption. Deficiency leads to weaker bones."
    )
    assert docs[0].title == "Vitamin D and bone health"
    assert docs[0].metadata == {"year": 2019, "record_id": "101"}  # lists are not metadata
    assert all(d.file == "papers.jsonl" for d in docs)


def test_field_map_can_pick_metadata_and_defaults_to_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "one", "a": 1, "b": 2}\n\n{"text": "two", "a": 3, "b": 4}\n')
    docs = load(path, root=tmp_path, field_map=FieldMap.parse({"metadata": ("b",)}))
    assert [d.source for d in docs] == ["rows.jsonl#1", "rows.jsonl#3"]
    assert docs[1].metadata == {"b": 4, "record_id": "3"}


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ('{"body": "x"}\n', "text=text", "no field 'text'.*fields: body.*--field-map"),
        ("{not json}\n", "text=text", r"rows.jsonl:1: invalid JSON"),
        ('["a list"]\n', "text=text", "expected a JSON object"),
        ('{"text": "x"}\n', "text=text,id=uid", "no id field 'uid'"),
    ],
)
def test_bad_jsonl_is_reported_with_file_and_line(
    tmp_path: Path, content: str, fields: str, message: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(RetrievalError, match=message):
        load(path, root=tmp_path, field_map=FieldMap.parse(fields))


def test_invalid_field_maps_name_the_valid_keys() -> None:
    with pytest.raises(RetrievalError, match="valid: text, title, id, metadata"):
        FieldMap.parse("body=abstract")
    with pytest.raises(RetrievalError, match="expected NAME=FIELD"):
        FieldMap.parse("text")


def test_discover_walks_folders_globs_and_skips_hidden_and_unknown(corpus: Path) -> None:
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "secret.md").write_text("# no")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "deep.md").write_text("# deep")
    names = [p.relative_to(corpus).as_posix() for p in discover(["."], root=corpus)]
    assert names == ["guide.md", "kitchen.html", "papers.jsonl", "solar.txt", "sub/deep.md"]
    globbed = [p.name for p in discover(["**/*.md", "guide.md"], root=corpus)]
    assert globbed == ["guide.md", "deep.md"]


def test_discover_explains_missing_and_unsupported_paths(corpus: Path) -> None:
    with pytest.raises(RetrievalError, match="no such file or folder"):
        discover(["nope/"], root=corpus)
    (corpus / "data.csv").write_text("a,b")
    with pytest.raises(RetrievalError, match=r"unsupported file type '.csv'; supported: .*\.md"):
        discover(["data.csv"], root=corpus)


@pytest.mark.parametrize(("module", "extra", "name"), [("pypdf", "pdf", "a.pdf"), ("bs4", "html", "a.html")])
def test_a_file_whose_reader_is_an_uninstalled_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, extra: str, name: str
) -> None:
    if extra == "pdf":
        write_pdf(tmp_path / name, ["Page one."])
    else:
        (tmp_path / name).write_text("<h1>Title</h1><p>Body.</p>", encoding="utf-8")
    monkeypatch.setitem(__import__("sys").modules, module, None)  # as if the extra were not installed
    with pytest.raises(RetrievalError) as caught:
        load(tmp_path / name)
    message = str(caught.value)
    assert name in message and f"pip install 'agentflow[{extra}]'" in message
