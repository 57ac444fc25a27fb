"""An app of realistic weight without a framework: about 60 MB of Python
objects built at import (as a large Django app's registries and tables),
and an import that takes HEAVY_IMPORT_SECONDS more (default 0)."""
import os
import time

TABLE = {i: ("row %d " % i) * 4 for i in range(600000)}
time.sleep(float(os.environ.get("HEAVY_IMPORT_SECONDS", "0")))


def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
