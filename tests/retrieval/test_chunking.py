"""Chunkers: token windows with overlap, markdown heading sections, sentence packing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentflow.retrieval.chunking import (
    ChunkingConfig,
    by_markdown,
    by_sentences,
    by_tokens,
    chunk,
    sentences,
)
from agentflow.retrieval.loaders import Document


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_token_windows_overlap_and_cover_every_word() -> None:
    text = words(25)
    pieces = by_tokens(text, ChunkingConfig(chunker="tokens", size=10, overlap=3))
    assert [p.text.split()[0] for p in pieces] == ["w0", "w7", "w14", "w21"]
    assert [len(p.text.split()) for p in pieces] == [10, 10, 10, 4]
    assert pieces[0].text.split()[-3:] == pieces[1].text.split()[:3]
    covered = {w for p in pieces for w in p.text.split()}
    assert covered == set(text.split())
    assert pieces[-1].text.split()[-1] == "w24"


def test_token_windows_keep_the_exact_source_text_and_offsets() -> None:
    text = "alpha  beta\n\ngamma delta epsilon"
    pieces = by_tokens(text, ChunkingConfig(chunker="tokens", size=3, overlap=1))
    assert pieces[0].text == "alpha  beta\n\ngamma"
    for p in pieces:
        assert text[p.start : p.start + len(p.text)] == p.text


def test_a_short_text_is_one_chunk_and_an_empty_text_none() -> None:
    config = ChunkingConfig(chunker="tokens", size=50, overlap=5)
    assert [p.text for p in by_tokens("just a few words", config)] == ["just a few words"]
    assert by_tokens("   \n ", config) == []


def test_markdown_sections_carry_their_heading_path() -> None:
    text = (
        "# Guide\n\nIntro.\n\n## Install\n\nRun pip.\n\n### Linux\n\nUse apt.\n\n"
        "## Usage\n\n```\n# a comment, not a heading\n```\nCall run().\n"
    )
    pieces = by_markdown(text, ChunkingConfig(chunker="markdown", size=100, overlap=10))
    assert [p.heading for p in pieces] == [
        "Guide",
        "Guide > Install",
        "Guide > Install > Linux",
        "Guide > Usage",
    ]
    assert pieces[2].text == "### Linux\n\nUse apt."
    assert "# a comment, not a heading" in pieces[3].text
    for p in pieces:
        assert text[p.start : p.start + len(p.text)] == p.text


def test_markdown_folds_a_bare_heading_into_the_next_section_and_windows_long_ones() -> None:
    text = "# Title\n\n## Part\n\n" + words(30) + "\n"
    pieces = by_markdown(text, ChunkingConfig(chunker="markdown", size=12, overlap=2))
    assert pieces[0].heading == "Title > Part"
    assert pieces[0].text.startswith("# Title")
    assert len(pieces) > 1 and all(p.heading == "Title > Part" for p in pieces)
    assert all(len(p.text.split()) <= 12 for p in pieces)


def test_markdown_cuts_long_sections_between_sentences() -> None:
    body = " ".join(f"Sentence {i} of the section has seven words." for i in range(12))
    text = "# Guide\n\n## Maps\n\n" + body + "\n"
    pieces = by_markdown(text, ChunkingConfig(chunker="markdown", size=20, overlap=7))
    assert len(pieces) > 3
    for p in pieces:
        assert p.heading == "Guide > Maps"
        assert p.text.rstrip().endswith(".")  # no sentence is cut in half
        assert text[p.start : p.start + len(p.text)] == p.text
    assert "Sentence 11 of the section" in pieces[-1].text


def test_sentence_splitter_handles_abbreviations_and_blank_lines() -> None:
    text = "Dr. Smith met Mr. Jones, e.g. at noon. They talked! Did it rain?\n\nNew paragraph here"
    found = [text[s:e] for s, e in sentences(text)]
    assert found == [
        "Dr. Smith met Mr. Jones, e.g. at noon.",
        "They talked!",
        "Did it rain?",
        "New paragraph here",
    ]


def test_sentences_are_packed_whole_with_sentence_overlap() -> None:
    text = " ".join(f"Sentence number {i} has six words." for i in range(6))
    pieces = by_sentences(text, ChunkingConfig(chunker="sentences", size=14, overlap=6))
    assert all(p.text.endswith(".") for p in pieces)
    assert all(len(p.text.split()) <= 14 for p in pieces)
    assert pieces[0].text.count("Sentence") == 2
    # the last sentence of a piece opens the next one
    assert pieces[1].text.startswith("Sentence number 1 ")
    assert pieces[-1].text.endswith("Sentence number 5 has six words.")


def test_a_sentence_longer_than_the_size_is_windowed() -> None:
    long = "Long " + words(29) + "."
    pieces = by_sentences(
        f"Short one. {long} Tail here.", ChunkingConfig(chunker="sentences", size=10, overlap=2)
    )
    assert pieces[0].text == "Short one."
    assert all(len(p.text.split()) <= 10 for p in pieces)
    assert pieces[-1].text == "Tail here."


def test_auto_uses_markdown_for_markdown_and_html_documents() -> None:
    config = ChunkingConfig()
    md = Document("# A\n\nText.\n\n## B\n\nMore.", "a.md", "a.md", format="markdown")
    txt = Document("# A\n\nText.\n\n## B\n\nMore.", "a.txt", "a.txt", format="text")
    assert [p.heading for p in chunk(md, config)] == ["A", "A > B"]
    assert [p.heading for p in chunk(txt, config)] == [""]


def test_invalid_chunking_is_rejected() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        ChunkingConfig(size=10, overlap=10)
    with pytest.raises(ValidationError):
        ChunkingConfig(chunker="paragraphs")  # type: ignore[arg-type]
    assert ChunkingConfig(size=100, overlap=10).fingerprint() == "auto:100:10:3"
