"""Answers "<pid> <SCRIPT_NAME> <PATH_INFO>" (stdlib only)."""
import os


def application(environ, start_response):
    text = "{} {} {}".format(os.getpid(), environ.get("SCRIPT_NAME", ""),
                             environ.get("PATH_INFO", ""))
    body = text.encode("latin-1", "replace")
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
