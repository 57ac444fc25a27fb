"""Tiny Falcon app for gowsgi (Falcon 2.x or 3.x+).

Needs Falcon (pip install falcon, or apt install python3-falcon).
"""
import falcon

_MAJOR = int(falcon.__version__.split(".")[0])


def _text(resp, s):
    resp.content_type = "text/plain; charset=utf-8"
    if _MAJOR >= 3:
        resp.text = s
    else:
        resp.body = s


class Index(object):
    def on_get(self, req, resp):
        # In Falcon, req.app is the SCRIPT_NAME the app is mounted at.
        _text(resp, "falcon: script_name={} url={}/ path={}\n".format(
            req.app, req.app, req.path))


class Hello(object):
    def on_get(self, req, resp, name):
        _text(resp, "falcon hello {}\n".format(name))


application = falcon.App() if _MAJOR >= 3 else falcon.API()
application.add_route("/", Index())
application.add_route("/hello/{name}", Hello())
