"""Plain WSGI hello world (stdlib only).

Set the GREETING environment variable to change the greeting.
"""
import os


def application(environ, start_response):
    greeting = os.environ.get("GREETING")
    if greeting:
        text = "{} from gowsgi!\n".format(greeting)
    else:
        text = "Hello from gowsgi!\n"
    body = text.encode("utf-8")
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
