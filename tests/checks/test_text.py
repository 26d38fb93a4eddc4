"""Parsing citations and statements, normal forms of short answers, abstentions."""

from __future__ import annotations

import pytest

from agentflow.checks.text import (
    best_sentence,
    cited_numbers,
    is_abstention,
    normalise_answer,
    parse_citation,
    statements,
    strip_citations,
)


@pytest.mark.parametrize(
    ("marker", "numbers"),
    [
        ("[DOC 2]", [2]),
        ("[DOC 1, 3]", [1, 3]),
        ("[doc 1,3]", [1, 3]),
        ("[DOC 1; 4]", [1, 4]),
        ("[DOC 1, DOC 3]", [1, 3]),
        ("[DOC 2-4]", [2, 3, 4]),
        ("[DOC 1 and 2]", [1, 2]),
        ("[DOC3]", [3]),
        ("[SOURCE 3]", []),
    ],
)
def test_citation_markers_of_every_form_parse_to_document_numbers(marker: str, numbers: list[int]) -> None:
    assert parse_citation(marker) == numbers


def test_cited_numbers_keep_first_mention_order_without_repeats() -> None:
    assert cited_numbers("A [DOC 3]. B [DOC 1][DOC 3]. C [DOC 2, 1].") == [3, 1, 2]


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before_it() -> None:
    found = statements("Qdrant is written in Rust. [DOC 1] It supports hybrid search. [DOC 2, 3]")
    assert [(s.clean, s.cited) for s in found] == [
        ("Qdrant is written in Rust.", (1,)),
        ("It supports hybrid search.", (2, 3)),
    ]


def test_citations_inside_sentences_and_abbreviations_stay_with_their_sentence() -> None:
    found = statements("Use a store, e.g. Qdrant [DOC 1]. Dr. Smith wrote it [DOC 2][DOC 4]. No cite here.")
    assert [s.cited for s in found] == [(1,), (2, 4), ()]
    assert found[0].clean == "Use a store, e.g. Qdrant."
    assert found[2].index == 2


def test_strip_citations_leaves_clean_text() -> None:
    assert strip_citations("It is Rust [DOC 1, 2] .") == "It is Rust."


def test_short_answers_normalise_to_one_form() -> None:
    assert normalise_answer("The Eiffel Tower [DOC 2].") == normalise_answer("eiffel  tower")
    assert normalise_answer("An apple!") == "apple"


@pytest.mark.parametrize(
    ("answer", "abstains"),
    [
        ("I don't know: the retrieved documents do not contain enough information.", True),
        ("The documents do not contain this information.", True),
        ("", True),
        ("Qdrant is written in Rust [DOC 1].", False),
        ("Qdrant is written in Rust [DOC 1]. It is fast. It scales. It has filters. "
         "The documents do not contain its price.", False),
    ],
)
def test_abstentions_are_recognised_only_in_short_answers(answer: str, abstains: bool) -> None:
    assert is_abstention(answer) is abstains


def test_best_sentence_quotes_the_passage_sentence_that_matches_the_statement() -> None:
    passage = "Qdrant is a vector database. It is written in Rust and supports filters."
    quote, score = best_sentence("Qdrant is written in Rust.", passage)
    assert quote == "It is written in Rust and supports filters."
    assert score > 0.5
    assert best_sentence("Bananas are yellow.", passage) == ("", 0.0)
