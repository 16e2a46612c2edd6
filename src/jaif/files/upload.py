"""An upload (multipart/form-data) read straight to disk as it arrives, its file part bounded while it is
read: nothing larger than the limit is ever kept, in memory or on disk. The HTTP side of POST /v1/files.

Fields: ``purpose`` (short text) and ``file`` (the file); any other field is refused, not ignored. The
portal's upload form (files/pages.py) adds its own short fields (``project``, ``csrf_token``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from jaif.errors import InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELDS = ("purpose", "file")
PAGE_UPLOAD_PATH = "/files/upload"  # the portal's upload form (files/pages.py): a body as large as a file
MAX_FIELD_BYTES = 1024


@dataclass
class Upload:
    fields: dict[str, str]
    filename: str | None
    size: int


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Reader:
    """python-multipart's callbacks: field values kept (small), the file's bytes queued for the disk."""

    def __init__(self, max_bytes: int, fields: tuple[str, ...] = FIELDS) -> None:
        self.max_bytes = max_bytes
        self.fields = fields
        self.upload = Upload(fields={}, filename=None, size=0)
        self.pending: list[bytes] = []
        self._part = _Part()
        self._header = b""
        self._value = b""
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
        }  # fmt: skip

    def _begin(self) -> None:
        self._part = _Part()
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name not in self.fields:
            raise InvalidRequest(
                f"Unknown parameter: '{name}'. An upload has the fields {', '.join(repr(f) for f in self.fields)}.",
                param=name or None, code="unknown_parameter",
            )  # fmt: skip
        if name in self.upload.fields or (name == "file" and self.upload.filename is not None):
            raise InvalidRequest(f"The field '{name}' is given twice.", param=name)
        self._part.name = name
        if name == "file":
            raw = options.get(b"filename")
            # Control characters (a NUL: PostgreSQL refuses it in text) are dropped; the name is only shown.
            given = os.path.basename(raw.decode("utf-8", "replace")) if raw else ""
            name = "".join(c for c in given if c.isprintable())
            self.upload.filename = name or "upload.jsonl"
            self._part.filename = self.upload.filename

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.name == "file":
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise PayloadTooLarge(
                    f"The file is larger than the limit of {self.max_bytes} bytes.", param="file", code="file_too_large"
                )
            self.pending.append(data[start:end])
        else:
            self._part.data += data[start:end]
            if len(self._part.data) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"The field '{self._part.name}' is too long.", param=self._part.name)

    def _end(self) -> None:
        if self._part.name != "file" and self._part.name is not None:
            self.upload.fields[self._part.name] = self._part.data.decode("utf-8", "replace")


async def receive_upload(request: Request, dest: Path, *, max_bytes: int, fields: tuple[str, ...] = FIELDS) -> Upload:
    """Read the request's multipart body, writing its file part to ``dest`` (flushed to disk)."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidRequest(
            "Upload the file as multipart/form-data with the fields 'file' and 'purpose'.", code="invalid_content_type"
        )
    reader = _Reader(max_bytes, fields)
    parser = MultipartParser(params[b"boundary"], reader.callbacks())
    with open(dest, "wb") as out:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if reader.pending:
                    data, reader.pending = b"".join(reader.pending), []
                    await asyncio.to_thread(out.write, data)
            parser.finalize()
        except FormParserError as exc:
            raise InvalidRequest(f"The multipart body is not valid: {exc}.", code="invalid_multipart") from exc
        except ClientDisconnect:  # nothing is kept; no one is left to read this answer
            raise InvalidRequest("The upload was cut off before it was whole.", code="incomplete_upload") from None
        await asyncio.to_thread(_sync, out)
    if reader.upload.filename is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    return reader.upload


def _sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
