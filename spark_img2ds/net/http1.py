"""A small HTTP/1.1 client for the download hot path: one GET at a time per keep-alive connection.

urllib3's request and response layers (headers parsed by email.feedparser) cost about
0.2 ms of Python per request, some 7% of the CPU of a 256 px image. An image download
needs little of HTTP: a GET, a status line, headers, a body framed by Content-Length,
chunked transfer coding or the end of the connection, and gzip/deflate content coding.
This module does that with bounded buffers (64 KiB of status line and headers, 100
header lines, as http.client) and nothing more. Policy (redirects, retries, deadlines,
opt-out, error messages) stays in fetch.py; opening connections is in connect.py.
"""

from __future__ import annotations

import socket
import zlib

MAX_HEAD = 65536
MAX_HEADERS = 100
RECV_SIZE = 1 << 16
MAX_CHUNK_LINE = 1024
PREALLOCATE_MAX = 32 << 20  # bodies announced as larger are received in chunks, as sent
NO_BODY_STATUS = frozenset({204, 304})


class HTTPFailure(Exception):
    """A response that could not be read; the subclasses say how."""


class ProtocolError(HTTPFailure):
    """The bytes received are not a valid HTTP/1.x response."""


class NoResponse(HTTPFailure):
    """The connection ended before any byte of a response."""


class Truncated(HTTPFailure):
    """The connection ended, or chunk framing broke, before the body was complete."""


class BadContentEncoding(HTTPFailure):
    """The body does not decode with the content coding the server named."""


class TooLarge(HTTPFailure):
    """The body is larger than the caller allows, as announced, as sent or as decoded."""


class Connection:
    """A socket and the bytes read from it but not yet consumed."""

    __slots__ = ("sock", "buf", "reusable")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.reusable = True

    def close(self) -> None:
        self.reusable = False
        try:
            self.sock.close()
        except OSError:
            pass

    def _more(self) -> bool:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    def _line(self, limit: int) -> bytes:
        """One line without its ending; Truncated at end of stream."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 1 :]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > limit:
                raise ProtocolError("line too long")
            if not self._more():
                raise Truncated("stream ended inside a line")

    def _exactly(self, n: int) -> bytes:
        """n bytes; the rest is received straight into one buffer of that size.

        Only a length up to PREALLOCATE_MAX is trusted for the buffer: a server that
        announces more pays for the bytes it actually sends, in chunks.
        """
        if len(self.buf) >= n:
            out, self.buf = self.buf[:n], self.buf[n:]
            return out
        if n > PREALLOCATE_MAX:
            return self._exactly_in_chunks(n)
        out = bytearray(n)
        view = memoryview(out)
        have = len(self.buf)
        view[:have] = self.buf
        self.buf = b""
        while have < n:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise Truncated(f"{have} of {n} bytes")
            have += got
        return bytes(out)

    def _exactly_in_chunks(self, n: int) -> bytes:
        parts, have = [self.buf], len(self.buf)
        self.buf = b""
        while have < n:
            data = self.sock.recv(min(RECV_SIZE, n - have))
            if not data:
                raise Truncated(f"{have} of {n} bytes")
            parts.append(data)
            have += len(data)
        return b"".join(parts)

    def _to_end(self, limit: int | None = None) -> bytes:
        parts, have = [self.buf], len(self.buf)
        self.buf = b""
        while True:
            if limit is not None and have > limit:
                raise TooLarge(f"more than {limit} bytes")
            data = self.sock.recv(RECV_SIZE)
            if not data:
                return b"".join(parts)
            parts.append(data)
            have += len(data)


def request_bytes(target: str, host_header: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The bytes of a GET for target on a keep-alive connection."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Response:
    """Status and headers of a response whose body has not been read yet."""

    __slots__ = ("status", "reason", "headers", "version", "conn")

    def __init__(self, status: int, reason: str, headers: dict[str, list[str]], version: str, conn: Connection):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = version
        self.conn = conn

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        return self.headers.get(name, [])

    def read(self, limit: int | None = None) -> bytes:
        """The whole body, decoded from its content coding; marks the connection reusable or not.

        limit bounds the body as announced, as received and as decoded: TooLarge past it.
        """
        return decode_content(self._body(limit), self.header("content-encoding"), limit)

    def discard(self, limit: int) -> bool:
        """Read and drop a body framed to at most limit bytes (an error page, a redirect's), so that the
        connection can serve the next request; whether it can. A body that runs to the connection's end,
        or is larger, is not read: the connection is then not reusable."""
        framed = self.status in NO_BODY_STATUS or (self.header("transfer-encoding") or "").strip().lower() == "chunked"
        try:
            length = content_length(self.header_list("content-length"))
        except ProtocolError:
            length = None
        if not framed and (length is None or length > limit):
            self.conn.reusable = False
            return False
        try:
            self._body(limit)
        except (OSError, HTTPFailure):
            self.conn.reusable = False
        return self.conn.reusable

    def _body(self, limit: int | None) -> bytes:
        """The body as sent (still content-coded); marks the connection reusable or not."""
        conn = self.conn
        if self.version == "HTTP/1.0" or "close" in (self.header("connection") or "").lower():
            conn.reusable = False
        codings = [c.strip() for c in (self.header("transfer-encoding") or "").lower().split(",") if c.strip()]
        if self.status in NO_BODY_STATUS:
            body = b""
        elif codings:
            if codings[-1] != "chunked":
                conn.reusable = False
                body = conn._to_end(limit)
            else:
                body = self._chunked(limit)
                if self.header("content-length") is not None:
                    conn.reusable = False  # framed twice: do not trust what follows
        else:
            length = content_length(self.header_list("content-length"))
            if length is None:
                conn.reusable = False
                body = conn._to_end(limit)
            elif limit is not None and length > limit:
                conn.reusable = False
                raise TooLarge(f"announced {length} bytes")
            else:
                body = conn._exactly(length)
        if conn.buf:
            conn.reusable = False  # bytes beyond the body: the stream is out of step
        return body

    def _chunked(self, limit: int | None = None) -> bytes:
        conn = self.conn
        parts, have = [], 0
        while True:
            size_text = conn._line(MAX_CHUNK_LINE).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Truncated("bad chunk size") from None
            if size < 0:
                raise Truncated("bad chunk size")
            if size == 0:
                for _ in range(MAX_HEADERS):
                    if not conn._line(MAX_HEAD):
                        return b"".join(parts)
                raise ProtocolError("too many trailer lines")
            have += size
            if limit is not None and have > limit:
                conn.reusable = False
                raise TooLarge(f"more than {limit} bytes")
            parts.append(conn._exactly(size))
            if conn._line(MAX_CHUNK_LINE):
                raise Truncated("chunk longer than its size")


def content_length(values: list[str]) -> int | None:
    """The body length the headers give; ProtocolError for a bad or conflicting value."""
    if not values:
        return None
    lengths = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit():
                raise ProtocolError("bad Content-Length")
            lengths.add(int(part))
    if len(lengths) != 1:
        raise ProtocolError("conflicting Content-Length")
    return lengths.pop()


def decode_content(body: bytes, coding: str | None, limit: int | None = None) -> bytes:
    """Undo gzip/deflate content codings, last applied first; unknown codings are left as sent.

    limit bounds each decoded result (TooLarge past it), so a small compressed bomb never
    inflates into memory.
    """
    if not coding:
        return body
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name in ("gzip", "x-gzip"):
            body = _gunzip(body, limit)
        elif name == "deflate":
            body = _inflate(body, limit)
        elif name != "identity":
            return body
    return body


def _decompress(d, data: bytes, limit: int | None) -> bytes:
    """What d decompresses from data, at most limit bytes; TooLarge if there would be more."""
    if limit is None:
        return d.decompress(data)
    out = d.decompress(data, limit + 1)
    if len(out) > limit:
        raise TooLarge(f"more than {limit} bytes once decoded")
    return out


def _gunzip(data: bytes, limit: int | None = None) -> bytes:
    out, have = [], 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = _decompress(d, data, None if limit is None else limit - have)
        except zlib.error:
            raise BadContentEncoding("gzip") from None
        if not d.eof:
            raise BadContentEncoding("gzip stream cut short")
        out.append(part)
        have += len(part)
        data = d.unused_data  # several gzip members follow one another
    return b"".join(out)


def _inflate(data: bytes, limit: int | None = None) -> bytes:
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib-wrapped, or raw deflate as some servers send
        d = zlib.decompressobj(wbits)
        try:
            out = _decompress(d, data, limit)
        except zlib.error:
            continue
        if d.eof:
            return out
    raise BadContentEncoding("deflate")


def read_head(conn: Connection) -> Response:
    """Status line and headers of the next final (non-1xx) response on conn."""
    while True:
        head = _head_block(conn)
        lines = head.split(b"\n")
        status, reason, version = _status_line(lines[0].rstrip(b"\r"))
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("unexpected protocol switch")
            continue  # 100 Continue and other interim responses precede the real one
        return Response(status, reason, _headers(lines[1:]), version, conn)


def _head_block(conn: Connection) -> bytes:
    """The bytes up to the blank line that ends the headers (bare LF line ends accepted)."""
    start = 0
    while True:
        buf = conn.buf
        end = buf.find(b"\n\r\n", start)
        end2 = buf.find(b"\n\n", start, end + 1 if end >= 0 else len(buf))
        if end2 >= 0:
            end, skip = end2, 2
        else:
            skip = 3
        if end > MAX_HEAD or (end < 0 and len(buf) > MAX_HEAD):
            raise ProtocolError("headers too long")
        if end >= 0:
            head, conn.buf = buf[:end], buf[end + skip :]
            return head
        start = max(0, len(buf) - 2)
        if not conn._more():
            if not conn.buf:
                raise NoResponse("closed before a response")
            raise ProtocolError("stream ended inside the headers")


def _status_line(line: bytes) -> tuple[int, str, str]:
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError("bad status line")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise ProtocolError("bad status code")
    reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
    return int(code), reason, parts[0].decode("ascii")


def _headers(lines: list[bytes]) -> dict[str, list[str]]:
    if len(lines) > MAX_HEADERS:
        raise ProtocolError("too many headers")
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    for raw in lines:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if last is not None:  # obsolete line folding: continues the previous value
                last[-1] = f"{last[-1]} {line.strip().decode('latin-1')}"
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            continue  # not a header line; http.client also skips these
        last = headers.setdefault(name.decode("latin-1").lower(), [])
        last.append(value.strip().decode("latin-1"))
    return headers
