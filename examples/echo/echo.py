"""Environ-echo WSGI app (stdlib only).

Returns a JSON document with every key of the WSGI environ and the request
body, which is handy for checking what a mount really passes to an app::

    {"environ": {...}, "body": "..."}

str/int/float/bool/None values are kept as they are, tuples and lists become
JSON lists and any other object is shown as its repr().  The body is read from
wsgi.input in 64 KiB pieces until b"" (so chunked input works too) and is
decoded as latin-1, so every byte maps to exactly one character.
"""
import json

CHUNK = 64 * 1024


def _jsonable(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _read_body(environ):
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    parts = []
    while True:
        data = stream.read(CHUNK)
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


def application(environ, start_response):
    body = _read_body(environ)
    doc = {
        "environ": {str(k): _jsonable(v) for k, v in environ.items()},
        "body": body.decode("latin-1"),
    }
    out = (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(out))),
    ])
    return [out]
