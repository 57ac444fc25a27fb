"""Has a real syntax error, on purpose."""


def application(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never"]
