"""Plain-text helpers of the offline backends: sentences, content words, lexical overlap.

Sentences and citations come from :mod:`agentflow.text` (``strip_citations`` is re-exported here
for the offline modules that import it from this one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from agentflow.text import split_sentences, strip_citations

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    tell please give know want like get also may might must shall one ever""".split()
)


_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_EMPHASIS = re.compile(r"\*\*|__")


def sentences(text: str, *, min_words: int = 3) -> list[str]:
    """Split a passage into sentences (:func:`agentflow.text.split_sentences`, the checks'
    splitter, so a quoted sentence is one statement there); fragments under ``min_words`` words
    are dropped.

    Headings, table rows, images and fenced code blocks are not sentences: they are never quoted as an
    answer. A sentence starts with a letter or a digit, and a line that starts with ``-``, ``*`` or a
    digit starts a new one (list items whose spacing was lost).
    """
    text = _EMPHASIS.sub("", _FENCE.sub("\n\n", text))
    body = "\n".join("" if line.lstrip().startswith(("|", "![")) else line  # tables, images
                     for line in text.splitlines() if not line.lstrip().startswith("#"))
    parts = (p.lstrip("*- ").strip() for p in split_sentences(body, starts="word", lists="line"))
    return [p for p in parts if p and len(p.split()) >= min_words]


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_ENDS_IN_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)[\s.,;:!?)*_`]*$")


def is_pointer(sentence: str) -> bool:
    """Whether a sentence only points elsewhere: it ends in a markdown link and what comes before
    the link is a lead-in ("More on stores and filters: [Retrieval](retrieval.md)", "See
    [the reference](yaml.md).") rather than a statement of its own."""
    end = _ENDS_IN_LINK.search(sentence)
    if end is None:
        return False
    lead = _LINK.sub(r"\1", sentence[: end.start()]).strip()
    return lead.endswith(":") or len(lead.split()) < 4


_LEADING_LINK = re.compile(r"^[\s*_`+-]*!?\[[^\]]*\]\([^)]*\)[\s*_`]*(?:[:\-\u2013\u2014,]|$)")


def is_navigation(sentence: str) -> bool:
    """Whether a sentence is navigation rather than a statement: it only points elsewhere
    (:func:`is_pointer`), or it is an entry of a list of links, a link followed by its blurb
    ("[Switch to a hosted provider](hosted-models.md): OpenAI, Anthropic, ...")."""
    return is_pointer(sentence) or bool(_LEADING_LINK.match(sentence))


def whole_sentences(text: str, *, min_words: int = 3) -> list[str]:
    """:func:`sentences` of a chunk, without the pieces its boundaries cut: a first piece that
    starts in lower case (the chunk began mid-sentence) and a last one with no closing
    punctuation (it ended mid-sentence). Overlapping neighbours hold those sentences whole.
    Navigation (:func:`is_navigation`: sentences that only point to another page, entries of a
    list of links) is left out: it is not an answer."""
    parts = [p for p in sentences(text, min_words=min_words) if not is_navigation(p)]
    if parts and parts[0][:1].islower():
        parts = parts[1:]
    last = parts[-1] if parts else ""
    if last and not last.rstrip("\"')]*`").endswith((".", "!", "?", ":")) \
            and " ".join(text.split()).endswith(last[-20:]):
        parts = parts[:-1]
    return parts


def weighted_containment(needle: set[str], haystacks: Sequence[set[str]]) -> list[float]:
    """Share of the words of ``needle`` found in each haystack, each word weighted by its inverse
    document frequency among the haystacks: a rare word ("pdf") counts more than one that every
    haystack has ("agentflow"). A word no haystack has weighs as much as the rarest one present,
    so it lowers every score alike (the needle asks about something none of them mention)."""
    if not needle or not haystacks:
        return [0.0] * len(haystacks)
    n = len(haystacks)
    df = {w: sum(w in h for h in haystacks) for w in needle}
    present = [math.log(1.0 + n / d) for d in df.values() if d]
    absent_weight = max(present) if present else 1.0
    weight = {w: math.log(1.0 + n / d) if d else absent_weight for w, d in df.items()}
    total = sum(weight.values())
    return [sum(weight[w] for w in needle & h) / total for h in haystacks]


def stem(word: str) -> str:
    """A light suffix stripper, enough to match "uses"/"used"/"using" with "use" and
    "lives"/"living" with "live" (a final "e" is dropped from every stem: "facing" and "face"
    both give "fac")."""
    for suffix in ("ies", "ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_words(text: str) -> set[str]:
    """Lower-cased, stemmed words of ``text`` without stop words."""
    return {stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOPWORDS}


def words_with_stems(text: str, stems: set[str]) -> list[str]:
    """The words of ``text`` whose stems are among ``stems``, as written, each once: what a
    message names for a set of stems."""
    return list(dict.fromkeys(w for w in _WORD.findall(text) if stem(w.lower()) in stems))


TYPE_WORDS = frozenset(content_words(
    "many much long far often old big large high tall wide deep what which who whom whose when "
    "where why how does do did can could"))
"""Words that say what kind of answer is wanted, not what it is about: not counted as topic."""


def topic_words(question: str) -> set[str]:
    """The content words of ``question`` that say what it is about (less :data:`TYPE_WORDS`)."""
    return content_words(question) - TYPE_WORDS


def containment(needle: Iterable[str] | set[str], haystack: set[str]) -> float:
    """Share of the words of ``needle`` found in ``haystack`` (0 when ``needle`` is empty)."""
    words = set(needle)
    return len(words & haystack) / len(words) if words else 0.0


def expand_query(question: str, n: int) -> list[str]:
    """Up to ``n`` search queries for a question, without a language model.

    The question itself; its content words alone (what BM25 and dense search match best on); and
    each part of a compound question ("... and ...", "...; ..."), so that every aspect is looked
    up on its own. Deterministic and labelled as what it is: a lexical expansion, not an LLM.
    """
    question = " ".join(question.split())
    words = [m for m in _WORD.findall(question) if m.lower() not in _STOPWORDS]
    candidates = [question, " ".join(words)]
    for part in re.split(r"\s*(?:;|,|\band\b|\bor\b|\bvs\.?|\bversus\b)\s*", question):
        part_words = [m for m in _WORD.findall(part) if m.lower() not in _STOPWORDS]
        if len(part_words) >= 2:
            candidates.append(" ".join(part_words))
    seen: dict[str, str] = {}
    for q in candidates:
        key = " ".join(q.lower().split())
        if key and content_words(q) and key not in seen:
            seen[key] = q.strip()
    return list(seen.values())[: max(1, n)]


# -- question types: what kind of answer a question wants, and whether a sentence has one --------

AnswerType = str
"""One of :data:`ANSWER_TYPES` (see :func:`answer_type`)."""
ANSWER_TYPES = ("money", "distance", "duration", "year", "procedure", "frequency", "number",
                "date", "person", "place")

_QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # units first: they refine "number" and "date" ("how far" wants a distance, not any number)
    ("money", re.compile(r"\bhow much (?:money\b|(?:does|do|did|will|would|is|are|should|can)\b"
                         r"[^?]*\b(?:cost|sell|charge|pay|price|worth)\w*)|\bwhat (?:does|do|did|is|"
                         r"are)\b[^?]*\b(?:cost|price)\b", re.I)),
    ("distance", re.compile(r"\bhow far\b", re.I)),
    ("duration", re.compile(r"\bhow long (?:does|do|did|will|can|should|would|is|are)\b[^?]*\b"
                            r"(?:live|last|take|stay|keep|wait|survive|remain|settle)\w*", re.I)),
    ("year", re.compile(r"\b(?:what|which|in which|in what) year\b", re.I)),
    ("procedure", re.compile(r"^\s*how (?:do|can|should|would) (?:i|we|you|one)\b|^\s*how to\b",
                             re.I)),
    ("frequency", re.compile(r"\bhow (?:often|frequently)\b", re.I)),
    ("number", re.compile(r"\bhow (?:many|much|long|far|old|big|large|high|tall|wide|deep|heavy|"
                          r"fast)\b|\bwhat (?:number|percentage|amount|size|age)\b", re.I)),
    ("date", re.compile(r"^\s*when\b|\bwhat (?:year|date|day|month|time|century)\b|"
                        r"\bin which year\b", re.I)),
    ("person", re.compile(r"^\s*(?:who|whom|whose)\b|\bwhich (?:person|people|author|writer|"
                          r"player|actor|president|king|queen)\b", re.I)),
    ("place", re.compile(r"^\s*where\b|\bwhich (?:country|city|state|place|town|continent)\b|"
                         r"\bin what (?:country|city|state|place)\b", re.I)),
)
_NUMBER_WORDS = (r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                 r"forty|fifty|hundred|thousand|million|billion|dozen|half")
_NUMBER = re.compile(rf"\b\d[\d,.]*\b|\b(?:{_NUMBER_WORDS})\b", re.I)
_FREQUENCY = re.compile(
    rf"\bevery\s+(?:(?:\d[\d,.]*|{_NUMBER_WORDS}|few|other)\s+)?[a-z]+|\b(?:once|twice|\d+\s+times)"
    r"\s+(?:a|an|per|every)\b|\bper\s+(?:day|week|month|year|hour|ride)\b|"
    r"\b(?:daily|weekly|monthly|yearly|annually|hourly)\b", re.I)
_MONTHS = (r"january|february|march|april|may|june|july|august|september|october|november|"
           r"december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DATE = re.compile(rf"\b(?:1[0-9]{{3}}|20[0-9]{{2}})s?\b|\b(?:{_MONTHS})\b\.?\s*\d|"
                   r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:" + _MONTHS + r")\b|\b\d+(?:st|nd|rd|th)\s+"
                   r"century\b|\b(?:yesterday|today|century|decade)\b", re.I)
_MONEY = re.compile(r"[$\u20ac\u00a3\u00a5]\s?\d|\b\d[\d,.]*\s*(?:dollars?|euros?|pounds?|cents?|"
                    r"pence|usd|eur|gbp|yen)\b|\b(?:free of charge|costs? nothing)\b", re.I)
_DISTANCE = re.compile(rf"\b(?:\d[\d,.]*|{_NUMBER_WORDS}|a few|several)\s*(?:-\s*)?(?:kilomet(?:re|er)s?|"
                       r"km|miles?|met(?:re|er)s?|m|feet|foot|ft|yards?)\b", re.I)
_DURATION = re.compile(rf"\b(?:\d[\d,.]*|{_NUMBER_WORDS}|a few|several|a|an)\s*(?:-\s*)?(?:seconds?|"
                       r"minutes?|hours?|days?|weeks?|months?|years?|decades?|seasons?|winters?|"
                       r"summers?)\b|\b(?:lifetime|lifespan|overnight)\b", re.I)
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b")
_IMPERATIVE = ("set use pass run add install call point give write put start choose switch change "
               "create open define export replace keep make send select enable disable turn type "
               "edit copy move ingest configure specify").split()
_INSTRUCTION = re.compile(r"`[^`]*(?:--[a-z]|^[a-z][\w.-]* [^`]+)[^`]*`|^\s*(?:" +
                          "|".join(_IMPERATIVE) + r")\b", re.I | re.M)
_NAME = re.compile(r"\b[A-Z]\w+(?:\s+(?:[A-Z]\.\s*)*[A-Z]\w+)+|(?<=[a-z,;]\s)[A-Z]\w+")
_PLACE = re.compile(r"\b(?:in|at|near|from|to|of)\s+(?:the\s+)?[A-Z][a-z]+|\b(?:city|country|"
                    r"state|river|mountain|island|region|province|county|street|town)\b")


_CONDITION = re.compile(r"^\s*when (?:should|do|can|must|shall|would|will) (?:i|we|you|one)\b|"
                        r"^\s*when to\b", re.I)
""""When should I replace the pads?" asks for a condition, not a date."""


_UNITS = {"money": _MONEY, "distance": _DISTANCE, "duration": _DURATION, "year": _YEAR}


def answer_type(question: str) -> AnswerType | None:
    """What kind of answer ``question`` wants (``None``: no particular kind), from cheap patterns:
    "how do I" -> procedure (an instruction: a command or flag in code, or an imperative);
    "how much does X cost" -> money; "how far" -> distance; "how long does X live/last/take"
    -> duration; "what year" -> year (a number or date in its unit, not any number);
    "how often" -> frequency; "how many/much/long" -> number ("how many times" too: NQ's are
    counts, "how many times has X won"); "when", "what year" -> date;
    "who" -> person; "where" -> place; "when should I" (a condition) -> no particular kind."""
    if _CONDITION.search(question):
        return None
    for kind, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return kind
    return None


def has_answer_type(sentence: str, kind: AnswerType | None) -> bool:
    """Whether ``sentence`` holds an answer of that kind (``True`` when ``kind`` is ``None``).

    A number question is not answered by a frequency alone: "every 300 kilometres" says how often,
    not how many. A person answer is a name: two capitalised words, or one after a lower-case word.
    """
    text = strip_citations(sentence)
    if kind is None:
        return True
    if kind == "procedure":
        return bool(_INSTRUCTION.search(text))
    if kind == "frequency":
        return bool(_FREQUENCY.search(text))
    if kind == "number":
        return bool(_NUMBER.search(_FREQUENCY.sub(" ", text)))
    if kind in _UNITS:
        return bool(_UNITS[kind].search(text))
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "person":
        return bool(_NAME.search(text))
    if kind == "place":
        return bool(_PLACE.search(text))
    raise ValueError(f"unknown answer type {kind!r}; valid: {', '.join(ANSWER_TYPES)}")


__all__ = ["ANSWER_TYPES", "TYPE_WORDS", "answer_type", "containment", "content_words",
           "expand_query", "has_answer_type", "is_navigation", "is_pointer", "sentences", "stem",
           "strip_citations", "topic_words", "weighted_containment", "whole_sentences",
           "words_with_stems"]
