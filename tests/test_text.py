"""The one sentence splitter and the one citation parser, and the modules that use them."""

from __future__ import annotations

import pytest

from agentflow import text
from agentflow.text import (
    cited_numbers,
    sentence_spans,
    split_sentences,
    strip_citations,
)


def test_every_module_reads_sentences_and_citations_with_the_same_functions() -> None:
    from agentflow.checks import text as checks_text
    from agentflow.models.offline import text as offline_text

    assert checks_text.split_sentences is text.split_sentences
    assert checks_text.strip_citations is offline_text.strip_citations is text.strip_citations
    assert checks_text.cited_numbers is text.cited_numbers
    assert checks_text.parse_citation is text.parse_citation


def test_spans_point_at_the_sentences_and_strings_are_their_normalised_texts() -> None:
    passage = "Dr. Smith met  Mr. Jones, e.g. at noon. They talked!\nDid it rain?\n\nNew paragraph here"
    spans = sentence_spans(passage)
    assert [passage[s:e] for s, e in spans] == [
        "Dr. Smith met  Mr. Jones, e.g. at noon.", "They talked!", "Did it rain?", "New paragraph here"]
    assert split_sentences(passage)[0] == "Dr. Smith met Mr. Jones, e.g. at noon."


def test_what_may_start_a_sentence_is_the_one_choice_callers_make() -> None:
    passage = "It ends here. -- so it goes on. and more. `Flow` runs. Then it stops."
    assert split_sentences(passage, starts="any") == [
        "It ends here.", "-- so it goes on.", "and more.", "`Flow` runs.", "Then it stops."]
    assert split_sentences(passage, starts="word") == [
        "It ends here. -- so it goes on.", "and more.", "`Flow` runs.", "Then it stops."]
    assert split_sentences(passage, starts="capital") == [
        "It ends here. -- so it goes on. and more. `Flow` runs.", "Then it stops."]


def test_list_items_end_a_sentence_as_asked() -> None:
    passage = "Steps:\n  - install it\n- run it\n2024 was the year"
    assert split_sentences(passage, lists="markdown") == ["Steps:", "- install it", "- run it 2024 was the year"]
    assert split_sentences(passage, lists="line") == ["Steps: - install it", "- run it", "2024 was the year"]
    assert split_sentences(passage, lists="none") == ["Steps: - install it - run it 2024 was the year"]


def test_abbreviations_initials_and_lone_letters() -> None:
    assert split_sentences('The feeder of "C. C. Miller" is known. It works.') == [
        'The feeder of "C. C. Miller" is known.', "It works."]
    assert split_sentences("Roe v. Wade was decided c. 1973 in the U.S. Supreme Court. It held.") == [
        "Roe v. Wade was decided c. 1973 in the U.S. Supreme Court.", "It held."]
    assert split_sentences("Founded in 400 B.C. The city grew.") == ["Founded in 400 B.C.", "The city grew."]
    assert split_sentences("Take plan a. Then wait.") == ["Take plan a.", "Then wait."]
    assert split_sentences("It takes 15 s. Then it stops.", lone_letters=True) == [
        "It takes 15 s. Then it stops."]
    assert split_sentences("Use a store (e.g.) Qdrant. Done.") == ["Use a store (e.g.) Qdrant.", "Done."]


def test_an_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: starts"):
        split_sentences("A. B.", starts="lower")  # type: ignore[arg-type]


def test_one_citation_parser_reads_every_marker_form() -> None:
    answer = "Rust [DOC 1, 3]. Python [doc 2-4][DOC 7]; Go [DOC 1 and DOC 9]."
    assert cited_numbers(answer) == [1, 3, 2, 4, 7, 9]
    assert strip_citations(answer) == "Rust. Python; Go."
    assert strip_citations("It is Rust[DOC 2].") == "It is Rust."
