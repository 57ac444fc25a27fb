"""A 64 KiB response body, one bytes object with Content-Length."""

BODY = b"x" * (64 * 1024)
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
