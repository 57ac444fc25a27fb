"""Tiny Flask app for gowsgi.

Needs Flask (pip install flask, or apt install python3-flask).
"""
from flask import Flask, Response, request, url_for

app = Flask(__name__)


def _text(s):
    return Response(s, mimetype="text/plain")


@app.route("/")
def index():
    return _text("flask: script_root={} url={} path={}\n".format(
        request.script_root, url_for("index"), request.path))


@app.route("/hello/<name>")
def hello(name):
    return _text("flask hello {}\n".format(name))


application = app
