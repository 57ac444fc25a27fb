"""Tiny Bottle app for gowsgi.

Needs Bottle (pip install bottle, or apt install python3-bottle).
"""
import bottle
from bottle import request, response

app = bottle.Bottle()


@app.route("/", name="index")
def index():
    response.content_type = "text/plain; charset=utf-8"
    # get_url() prefixes request.script_name, so it is mount-aware.
    return "bottle: script_name={} url={} path={}\n".format(
        request.script_name, app.get_url("index"), request.path)


@app.route("/hello/<name>", name="hello")
def hello(name):
    response.content_type = "text/plain; charset=utf-8"
    return "bottle hello {}\n".format(name)


application = app
