"""Stdlib-only WSGI test app for gowsgi's end-to-end tests.

Routes on PATH_INFO; see the ROUTES table at the bottom. Must run on any
Python 3.8+ and must not import anything outside the standard library.
"""
import json
import os
import sys
import time
from urllib.parse import parse_qs

CHUNK = 64 * 1024
TEXT = "text/plain"
OCTET = "application/octet-stream"


# ---------------------------------------------------------------- helpers

def _query(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _qget(environ, name, default):
    values = _query(environ).get(name)
    return values[0] if values else default


def _to_bytes(s):
    # WSGI strings are latin-1 "bytes as str"; other text goes out as UTF-8.
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def _respond(start_response, body, content_type=TEXT, status="200 OK", headers=()):
    if isinstance(body, str):
        body = _to_bytes(body)
    start_response(status, [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
    ] + list(headers))
    return [body]


def _jsonable(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _read_all_sized(stream):
    """Read until b"" with read(size) calls (what PEP 3333 requires)."""
    parts = []
    while True:
        data = stream.read(CHUNK)
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


_BLOCK = bytes(range(251))
# Enough pattern to slice a full CHUNK starting at any phase 0..250.
_PATTERN = _BLOCK * (CHUNK // 251 + 2)
_chunk_cache = {}


def _pattern_chunk(phase, size):
    if size == CHUNK:
        chunk = _chunk_cache.get(phase)
        if chunk is None:
            chunk = _chunk_cache[phase] = _PATTERN[phase:phase + CHUNK]
        return chunk
    return _PATTERN[phase:phase + size]


def big_chunks(n):
    """bytes(i % 251 for i in range(n)), as a list of CHUNK-sized bytes."""
    chunks = []
    off = 0
    while off < n:
        size = min(CHUNK, n - off)
        chunks.append(_pattern_chunk(off % 251, size))
        off += size
    return chunks


class _ClosingIterable(object):
    """Iterable whose close() logs QUERY_STRING to $GOWSGI_TEST_CLOSE_LOG."""

    def __init__(self, environ, items, raise_after_first=False):
        self.query = environ.get("QUERY_STRING", "")
        self.items = items
        self.raise_after_first = raise_after_first

    def __iter__(self):
        for i, item in enumerate(self.items):
            yield item
            if self.raise_after_first and i == 0:
                raise RuntimeError("boom from close-raise iterable")

    def close(self):
        path = os.environ.get("GOWSGI_TEST_CLOSE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(self.query + "\n")
                f.flush()


# ----------------------------------------------------------------- routes

def index(environ, start_response):
    return _respond(start_response, "basic ok")


def environ_json(environ, start_response):
    body = _read_all_sized(environ["wsgi.input"])
    doc = {str(k): _jsonable(v) for k, v in environ.items()}
    doc["body_len"] = len(body)
    out = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True).encode("ascii")
    return _respond(start_response, out, "application/json")


def echo(environ, start_response):
    return _respond(start_response, environ["wsgi.input"].read(), OCTET)


def echo_sized(environ, start_response):
    return _respond(start_response, _read_all_sized(environ["wsgi.input"]), OCTET)


def echo_lines(environ, start_response):
    stream = environ["wsgi.input"]
    parts = []
    while True:
        line = stream.readline()
        if not line:
            break
        parts.append(line)
    return _respond(start_response, b"".join(parts), OCTET)


def echo_iter(environ, start_response):
    parts = [line for line in environ["wsgi.input"]]
    return _respond(start_response, b"".join(parts), OCTET)


def echo_readlines(environ, start_response):
    return _respond(start_response, b"".join(environ["wsgi.input"].readlines()), OCTET)


def big_stream(environ, start_response):
    """big's body, yielded in CHUNK-sized pieces (no Content-Length)."""
    n = int(_qget(environ, "n", "0"))
    start_response("200 OK", [("Content-Type", OCTET)])
    return iter(big_chunks(n))


def big_raise(environ, start_response):
    """big-stream's body, then an exception: the response is cut."""
    n = int(_qget(environ, "n", "0"))
    start_response("200 OK", [("Content-Type", OCTET)])

    def gen():
        for chunk in big_chunks(n):
            yield chunk
        raise RuntimeError("boom after the body")
    return gen()


def overlong(environ, start_response):
    """Declares Content-Length cl and yields the comma-separated parts
    (one part: a list of one item; more: a generator)."""
    cl = _qget(environ, "cl", "5")
    parts = [p.encode() for p in _qget(environ, "parts", "abcdefgh").split(",")]
    start_response("200 OK", [("Content-Type", TEXT), ("Content-Length", cl)])
    if len(parts) == 1:
        return parts
    return (p for p in parts)


def text(environ, start_response):
    """n bytes of HTML; optional etag, cc (Cache-Control), ce
    (Content-Encoding), type and code from the query."""
    n = int(_qget(environ, "n", "5000"))
    body = (b"<p>hello compression</p>\n" * (n // 25 + 1))[:n]
    headers = [("Content-Type", _qget(environ, "type", "text/html; charset=utf-8")),
               ("Content-Length", str(len(body)))]
    for q, name in (("etag", "ETag"), ("cc", "Cache-Control"), ("ce", "Content-Encoding")):
        v = _qget(environ, q, "")
        if v:
            headers.append((name, v))
    code = _qget(environ, "code", "200")
    start_response(code + " Whatever", headers)
    return [body]


def identity(environ, start_response):
    """uid, gid and umask of this worker; whether it can read path; how
    many more files it can open."""
    mask = os.umask(0)
    os.umask(mask)
    readable = None
    path = _qget(environ, "path", "")
    if path:
        try:
            open(path).close()
            readable = True
        except PermissionError:
            readable = False
    opened = []
    try:
        while len(opened) < 100000:
            opened.append(open(os.devnull))
    except OSError:
        pass
    n = len(opened)
    for f in opened:
        f.close()
    return _respond(start_response, json.dumps({"uid": os.getuid(), "gid": os.getgid(), "umask": mask,
                                                "readable": readable, "opened": n}), "application/json")


def untyped(environ, start_response):
    """A body with no Content-Type: the host must not guess one."""
    start_response("200 OK", [])
    return [_qget(environ, "body", "<html><body>hi</body></html>").encode()]


def big(environ, start_response):
    n = int(_qget(environ, "n", "0"))
    start_response("200 OK", [("Content-Type", OCTET)])
    return big_chunks(n)


def write(environ, start_response):
    w = start_response("200 OK", [("Content-Type", TEXT)])
    w(b"part1-")
    return [b"part2"]


def raise_(environ, start_response):
    raise RuntimeError("boom from basic app")


def raise_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT)])

    def gen():
        yield b"partial"
        raise RuntimeError("boom after start from basic app")
    return gen()


def exc_info(environ, start_response):
    start_response("200 OK", [("X-First", "1")])
    try:
        raise ValueError("replaced on purpose")
    except ValueError:
        start_response("500 Internal Server Error", [
            ("Content-Type", TEXT),
            ("X-Replaced", "1"),
        ], sys.exc_info())
    return [b"replaced"]


def exc_info_after_body(environ, start_response):
    # A generator app: everything, start_response included, runs while the
    # host iterates. The second start_response comes after a body chunk was
    # sent, so PEP 3333 says it must re-raise; we let that propagate.
    start_response("200 OK", [("Content-Type", TEXT)])
    yield b"first"
    try:
        raise ValueError("error after body on purpose")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", TEXT)], sys.exc_info())
    yield b"should never be sent"


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b"x"]


def bad_header_name(environ, start_response):
    start_response("200 OK", [("Bad Name", "1")])
    return [b"x"]


def two_lengths(environ, start_response):
    start_response("200 OK", [("Content-Length", "5"), ("Content-Length", "50")])
    return [b"12345"]


def bad_status(environ, start_response):
    start_response("200", [("Content-Type", TEXT)])
    return [b"x"]


def close(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT)])
    return _ClosingIterable(environ, [b"close ", b"ok"])


def close_raise(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT)])
    return _ClosingIterable(environ, [b"close-raise ", b"never"], raise_after_first=True)


def slow(environ, start_response):
    time.sleep(float(_qget(environ, "s", "1")))
    return _respond(start_response, "slept {}".format(os.getpid()))


def rendezvous(environ, start_response):
    """Mark this request present in dir, then wait (up to 20 s) for peer.

    Two requests that meet prove they ran at the same time, with no timing
    assumption: served one after the other, the first one gives up.
    """
    d = _qget(environ, "dir", "")
    me, peer = _qget(environ, "me", "a"), _qget(environ, "peer", "b")
    open(os.path.join(d, me), "w").close()
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(os.path.join(d, peer)):
            return _respond(start_response, "met {}".format(os.getpid()))
        time.sleep(0.01)
    return _respond(start_response, "alone {}".format(os.getpid()))


def crash(environ, start_response):
    """Die the hard way, as a segfault or the OOM killer would."""
    os._exit(int(_qget(environ, "code", "1")))


def crash_when(environ, start_response):
    """Mark "waiting" in dir, wait (up to 20 s) for "go" there, then die."""
    d = _qget(environ, "dir", "")
    open(os.path.join(d, "waiting"), "w").close()
    deadline = time.time() + 20
    while time.time() < deadline and not os.path.exists(os.path.join(d, "go")):
        time.sleep(0.01)
    os._exit(1)


def file_(environ, start_response):
    """wsgi.file_wrapper over a real file, from ?offset= on (a regular file:
    the host should send it with sendfile)."""
    f = open(_qget(environ, "path", ""), "rb")
    f.seek(int(_qget(environ, "offset", "0")))
    start_response("200 OK", [("Content-Type", OCTET)])
    return environ["wsgi.file_wrapper"](f, 8192)


def filelike(environ, start_response):
    """wsgi.file_wrapper over an in-memory file: read in blocks."""
    import io
    start_response("200 OK", [("Content-Type", OCTET)])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 1000)


def stream_wait(environ, start_response):
    """Yield a first chunk, wait (up to 20 s) for "go" in dir, yield a second."""
    d = _qget(environ, "dir", "")
    start_response("200 OK", [("Content-Type", TEXT)])

    def gen():
        yield b"first\n"
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(os.path.join(d, "go")):
            time.sleep(0.01)
        yield b"second\n"
    return gen()


def short(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT), ("Content-Length", "10")])
    return iter([b"12345"])


def long_(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT), ("Content-Length", "3")])
    return iter([b"abc", b"defghij"])


def status(environ, start_response):
    code = _qget(environ, "code", "200")
    reason = {"204": "No Content", "304": "Not Modified"}.get(code, "Whatever")
    start_response(code + " " + reason, [("X-Code", code)])
    return [b"must not be sent" if code in ("204", "304") else b"body"]


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT)])
    return (c for c in [b"gen", b"erated"])


def hang(environ, start_response):
    time.sleep(3600)
    return _respond(start_response, "woke up")


_leaked = []


def leak(environ, start_response):
    """Keep mb more MiB alive in this process and report the pid."""
    mb = int(_qget(environ, "mb", "10"))
    _leaked.append(b"x" * (mb << 20))
    return _respond(start_response, "leaked {} {}".format(len(_leaked), os.getpid()))


def pid(environ, start_response):
    return _respond(start_response, str(os.getpid()))


def stream(environ, start_response):
    n = int(_qget(environ, "n", "3"))
    delay = float(_qget(environ, "delay", "0.2"))
    first = float(_qget(environ, "first", "0"))
    start_response("200 OK", [("Content-Type", TEXT)])

    def gen():
        for i in range(n):
            time.sleep(delay if i else first)
            yield "chunk {}\n".format(i).encode("ascii")
    return gen()


def empty_chunks(environ, start_response):
    start_response("200 OK", [("Content-Type", TEXT)])

    def gen():
        yield b""
        yield b""
        yield b"data"
        yield b""
    return gen()


def stderr(environ, start_response):
    errors = environ["wsgi.errors"]
    errors.write("hello to wsgi.errors\n")
    errors.flush()
    print("hello to stdout", flush=True)
    return _respond(start_response, "logged")


def not_found(environ, start_response):
    return _respond(start_response, "not found: " + environ.get("PATH_INFO", ""),
                    status="404 Not Found")


ROUTES = {
    "/": index,
    "/environ": environ_json,
    "/echo": echo,                  # read() with no size
    "/echo-sized": echo_sized,      # read(65536) until b""
    "/echo-lines": echo_lines,      # readline() loop
    "/echo-iter": echo_iter,        # for line in wsgi.input
    "/echo-readlines": echo_readlines,
    "/big": big,
    "/big-stream": big_stream,
    "/big-raise": big_raise,
    "/overlong": overlong,
    "/untyped": untyped,
    "/identity": identity,
    "/text": text,
    "/write": write,
    "/raise": raise_,
    "/raise-after-start": raise_after_start,
    "/exc-info": exc_info,
    "/exc-info-after-body": exc_info_after_body,
    "/bad-header": bad_header,
    "/bad-header-name": bad_header_name,
    "/bad-status": bad_status,
    "/two-lengths": two_lengths,
    "/close": close,
    "/close-raise": close_raise,
    "/slow": slow,
    "/pid": pid,
    "/crash": crash,
    "/file": file_,
    "/filelike": filelike,
    "/stream-wait": stream_wait,
    "/short": short,
    "/long": long_,
    "/status": status,
    "/generator": generator,
    "/crash-when": crash_when,
    "/hang": hang,
    "/leak": leak,
    "/rendezvous": rendezvous,
    "/stream": stream,
    "/empty-chunks": empty_chunks,
    "/stderr": stderr,
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    if path.startswith("/environ/"):
        path = "/environ"  # /environ/anything: the environ, for path tests
    handler = ROUTES.get(path, not_found)
    return handler(environ, start_response)
