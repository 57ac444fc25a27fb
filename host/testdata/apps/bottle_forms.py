"""Bottle app that reports the form fields and file uploads it parsed."""
import bottle
from bottle import request, response

app = bottle.Bottle()


@app.post("/form")
def form():
    response.content_type = "text/plain; charset=utf-8"
    up = request.files.get("file")
    data = up.file.read() if up is not None else b""
    return "bottle name={} file={}:{}\n".format(
        request.forms.get("name"), up.raw_filename if up is not None else None, len(data))


application = app
