"""An app whose import waits at a gate, for tests of what happens meanwhile.

The folder $GOWSGI_TEST_GATE gets the file "importing" (holding the
importing process's pid) when the import begins; the import then waits
until a file "release" appears there (or $GOWSGI_TEST_GATE_CAP seconds,
default 15, pass) and writes "imported" when it goes on. A request for
/crash kills the worker.
"""
import os
import time

_gate = os.environ["GOWSGI_TEST_GATE"]
with open(os.path.join(_gate, "importing.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(_gate, "importing.tmp"), os.path.join(_gate, "importing"))
_deadline = time.time() + float(os.environ.get("GOWSGI_TEST_GATE_CAP", "15"))
while not os.path.exists(os.path.join(_gate, "release")) and time.time() < _deadline:
    time.sleep(0.01)
open(os.path.join(_gate, "imported"), "w").close()


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/crash":
        os._exit(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"gated"]
