"""Reads the request body (wsgi.input) to the end and answers its length in bytes."""

CHUNK = 64 * 1024


def application(environ, start_response):
    stream = environ["wsgi.input"]
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    total = 0
    while remaining > 0:
        data = stream.read(min(CHUNK, remaining))
        if not data:
            break
        total += len(data)
        remaining -= len(data)
    body = str(total).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
