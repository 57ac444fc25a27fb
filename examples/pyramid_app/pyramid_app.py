"""Tiny Pyramid app for gowsgi.

Needs Pyramid (pip install pyramid, or apt install python3-pyramid).
"""
from pyramid.config import Configurator
from pyramid.response import Response


def _text(s):
    return Response(s, content_type="text/plain", charset="utf-8")


def index(request):
    return _text("pyramid: script_name={} url={} path={}\n".format(
        request.script_name, request.route_path("index"), request.path_info))


def hello(request):
    return _text("pyramid hello {}\n".format(request.matchdict["name"]))


def make_app():
    with Configurator() as config:
        config.add_route("index", "/")
        config.add_route("hello", "/hello/{name}")
        config.add_view(index, route_name="index")
        config.add_view(hello, route_name="hello")
        return config.make_wsgi_app()


application = make_app()
