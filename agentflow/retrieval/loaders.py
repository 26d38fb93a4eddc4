"""Loading files into documents: .txt, .md, .html, .pdf, and .jsonl with a field mapping.

A :class:`Document` is the unit of content hashing: a whole file, or one record of a .jsonl file
(its ``source`` is ``path#id``). HTML headings become markdown headings, so the markdown chunker
records the heading path of HTML chunks too. PDF pages are joined with form feeds and each chunk
records the page it starts on.

Reading HTML needs the ``html`` extra (BeautifulSoup) and PDF the ``pdf`` extra (pypdf); without it a
collection that holds such a file stops with an error that names the extra to install.

A file whose content is not text (a corrupt PDF; binary data in a .txt, .md or .html file: NUL
bytes, or many bytes that are not UTF-8 or are control characters) raises
:class:`~agentflow.errors.UnreadableDocumentError`, which ingestion turns into a warning and a
skipped file. Text files are UTF-8 (a UTF-16 or UTF-8 byte order mark is honoured); a few stray
undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentflow.errors import RetrievalError, UnreadableDocumentError

Format = Literal["text", "markdown", "html", "pdf", "jsonl"]
FORMATS: dict[str, Format] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
"""File suffix -> format; other files are skipped when a folder is walked."""


@dataclass(slots=True)
class Document:
    """Text to chunk, with where it came from."""

    text: str
    source: str
    """Unique key of the document in its collection: the file path, or ``path#id`` for .jsonl."""
    file: str
    """The file the document was read from."""
    title: str = ""
    format: Format = "text"
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: list[int] = field(default_factory=list)
    """For PDFs: the character offset at which each page starts."""


class FieldMap(BaseModel):
    """Which fields of a .jsonl record hold the text, the title and the id.

    The text field may hold a string or a list of strings (joined with spaces). Other scalar
    fields become chunk metadata unless ``metadata`` lists the ones to keep.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    text: str = "text"
    """The field with the document's text."""
    title: str | None = None
    """The field with the document's title, if any."""
    id: str | None = None
    """The field with the record's id; its line number when omitted."""
    metadata: tuple[str, ...] | None = None
    """The fields kept as chunk metadata; every other scalar field when omitted."""

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | FieldMap | None) -> FieldMap:
        """From ``"text=abstract,title=title,id=doc_id"`` (the CLI form) or a mapping."""
        if spec is None:
            return cls()
        if isinstance(spec, FieldMap):
            return spec
        if isinstance(spec, str):
            pairs: dict[str, Any] = {}
            for part in filter(None, (p.strip() for p in spec.split(","))):
                key, sep, value = part.partition("=")
                if not sep or not value:
                    raise RetrievalError(
                        f"invalid field map entry {part!r} in {spec!r}; expected NAME=FIELD with "
                        "NAME one of text, title, id, metadata (metadata=a+b)"
                    )
                pairs[key.strip()] = tuple(value.split("+")) if key.strip() == "metadata" else value
            spec = pairs
        unknown = set(spec) - set(cls.model_fields)
        if unknown:
            raise RetrievalError(
                f"unknown field map key(s) {sorted(unknown)}; valid: text, title, id, metadata"
            )
        return cls(**dict(spec))


def discover(paths: Sequence[str | Path], *, root: str | Path = ".") -> list[Path]:
    """The files named by ``paths`` (files, folders walked recursively, or glob patterns),
    relative to ``root``; sorted and without duplicates. Missing paths raise."""
    base = Path(root)
    found: dict[Path, None] = {}
    for raw in paths:
        text = str(raw)
        path = Path(text) if Path(text).is_absolute() else base / text
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            found.update((m, None) for m in matches if m.is_file() and m.suffix.lower() in FORMATS)
            continue
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in FORMATS:
                    found[child] = None
        elif path.is_file():
            if path.suffix.lower() not in FORMATS:
                raise RetrievalError(
                    f"cannot ingest {text}: unsupported file type {path.suffix or '(none)'!r}; "
                    f"supported: {', '.join(sorted(FORMATS))}"
                )
            found[path] = None
        else:
            raise RetrievalError(f"cannot ingest {text}: no such file or folder under {base}")
    return sorted(found)


def source_name(path: Path, root: str | Path = ".") -> str:
    """How a file is named in chunk metadata: relative to ``root`` when inside it, posix style."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def load(
    path: Path, *, root: str | Path = ".", field_map: FieldMap | None = None
) -> list[Document]:
    """Read one file into its documents (one, or one per .jsonl record)."""
    fmt = FORMATS.get(path.suffix.lower())
    name = source_name(path, root)
    try:
        if fmt == "jsonl":
            return list(_jsonl(path, name, field_map or FieldMap()))
        if fmt == "pdf":
            return [_pdf(path, name)]
        raw = read_text(path)
    except OSError as exc:
        raise RetrievalError(f"cannot read {path}: {exc}") from exc
    if fmt == "html":
        text, title = html_to_markdown(raw, path)
        return [Document(text, name, name, title or path.stem, "html")]
    if fmt == "markdown":
        heading = re.search(r"^#\s+(.+?)\s*#*\s*$", raw, re.MULTILINE)
        return [Document(raw, name, name, heading.group(1) if heading else path.stem, "markdown")]
    if fmt == "text":
        return [Document(raw, name, name, path.stem, "text")]
    raise RetrievalError(
        f"cannot ingest {path}: unsupported file type {path.suffix!r}; "
        f"supported: {', '.join(sorted(FORMATS))}"
    )


BINARY_RATIO = 0.05
"""A text file with more than this share of undecodable or control characters is binary."""
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]")
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text(path: Path) -> str:
    """The text of a .txt, .md or .html file; raises UnreadableDocumentError for binary data,
    which would otherwise become chunks of garbage."""
    data = path.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    if encoding != "utf-16" and b"\x00" in data:
        raise UnreadableDocumentError(
            f"cannot ingest {path}: it holds binary data (NUL bytes), not {path.suffix} text"
        )
    text = data.decode(encoding, errors="replace")
    sample = text[: 1 << 20]  # the first million characters tell, as they do for `file` and git
    share = len(_CONTROL.findall(sample)) / len(sample) if sample else 0.0
    if share > BINARY_RATIO:
        raise UnreadableDocumentError(
            f"cannot ingest {path}: it looks binary, not {path.suffix} text ({share:.0%} of its "
            f"characters are not UTF-8 or are control characters; at most {BINARY_RATIO:.0%} pass)"
        )
    return text


def _extra(module: str, extra: str, what: str, path: Path | None = None) -> Any:
    """Import ``module`` from an optional extra, or say which extra reads ``what``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        where = f"cannot ingest {path}: " if path is not None else ""
        raise RetrievalError(
            f"{where}reading {what} needs the {extra!r} extra: pip install 'agentflow[{extra}]' "
            f"(or leave such files out of the collection's source)"
        ) from None


def html_to_markdown(html: str, path: Path | None = None) -> tuple[str, str]:
    """Visible text of an HTML page with h1-h6 as markdown headings; and the page title."""
    BeautifulSoup = _extra("bs4", "html", "HTML files", path).BeautifulSoup  # noqa: N806

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    if title_tag:
        title_tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    for tag in soup.find_all(
        ["p", "li", "div", "section", "article", "tr", "br", "pre", "blockquote"]
    ):
        tag.insert_after("\n\n" if tag.name != "br" else "\n")
    text = soup.get_text()
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    if not title:
        first = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        title = first.group(1) if first else ""
    return text, title


def _pdf(path: Path, name: str) -> Document:
    PdfReader = _extra("pypdf", "pdf", "PDF files", path).PdfReader  # noqa: N806

    if path.stat().st_size == 0:
        raise UnreadableDocumentError(f"cannot read PDF {path}: the file is empty")
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # its warnings ("EOF marker not found") name no file
    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except OSError:
        raise
    except Exception as exc:  # pypdf raises many types (struct, zlib, KeyError...) on bad files
        raise UnreadableDocumentError(
            f"cannot read PDF {path}: {type(exc).__name__}: {exc or 'malformed file'}"
        ) from exc
    finally:
        pypdf_log.setLevel(level)
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 1
    return Document("\f".join(pages), name, name, str(meta_title) or path.stem, "pdf", pages=starts)


def jsonl_objects(path: Path,
                  error: type[Exception] = RetrievalError) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-empty line of a JSON Lines file; an unreadable file
    or a bad line raises ``error`` naming the file (and line)."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {path}: {exc}") from exc
    with handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            yield line_no, row


def _jsonl(path: Path, name: str, fields: FieldMap) -> Iterator[Document]:
    for line_no, record in jsonl_objects(path):
        yield _record(record, path, name, line_no, fields)


def _record(
    record: dict[str, Any], path: Path, name: str, line_no: int, fields: FieldMap
) -> Document:
    if fields.text not in record:
        raise RetrievalError(
            f"{path}:{line_no}: no field {fields.text!r} for the text; fields: "
            f"{', '.join(sorted(record))}. Map it with --field-map text=FIELD"
        )
    text = record[fields.text]
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    if not isinstance(text, str):
        raise RetrievalError(f"{path}:{line_no}: field {fields.text!r} is not text: {text!r}")
    if fields.id is not None and fields.id not in record:
        raise RetrievalError(f"{path}:{line_no}: no id field {fields.id!r}")
    doc_id = str(record[fields.id]) if fields.id is not None else str(line_no)
    title = str(record.get(fields.title, "")) if fields.title else ""
    used = {fields.text, fields.title, fields.id}
    keep = fields.metadata if fields.metadata is not None else [k for k in record if k not in used]
    metadata = {
        k: record[k]
        for k in keep
        if k in record and isinstance(record[k], (str, int, float, bool)) and record[k] is not None
    }
    metadata["record_id"] = doc_id
    return Document(text, f"{name}#{doc_id}", name, title, "jsonl", metadata)
