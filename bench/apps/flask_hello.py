"""Flask hello world: the same response as hello.py, through a framework."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello, World!", 200, {"Content-Type": "text/plain"}


application = app
