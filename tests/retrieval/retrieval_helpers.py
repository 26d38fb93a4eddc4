"""Helpers of the retrieval tests: the store backends and a minimal PDF writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentflow.retrieval.edge import EdgeStore
from agentflow.retrieval.memory import MemoryStore
from agentflow.retrieval.server import QdrantServerStore
from agentflow.retrieval.store import VectorStore

FIXTURES = Path(__file__).parent / "fixtures"

BACKENDS = ("edge", "qdrant-client-memory", "qdrant-client-path", "memory")
"""Every backend that can run here. A Qdrant server runs the same code as qdrant-client's local
mode (QdrantServerStore); no server binary can be installed on this machine."""

StoreFactory = Callable[[str], VectorStore]


def make_store(backend: str, collection: str, tmp: Path) -> VectorStore:
    if backend == "edge":
        return EdgeStore(collection, tmp / "edge")
    if backend == "qdrant-client-memory":
        return QdrantServerStore(collection, location=":memory:")
    if backend == "qdrant-client-path":
        return QdrantServerStore(collection, path=tmp / "qdrant-local")
    if backend == "memory":
        return MemoryStore(collection)
    raise ValueError(backend)


def write_pdf(path: Path, pages: list[str], *, title: str = "") -> Path:
    """Write a valid PDF whose pages each hold one line of text."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info_id = None
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_id = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R"
    if info_id:
        trailer += f" /Info {info_id} 0 R"
    out += f"trailer\n{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path
