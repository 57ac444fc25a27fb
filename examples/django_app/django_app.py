"""Single-file Django project for gowsgi (no database, no installed apps).

Needs Django (pip install django, or apt install python3-django).
Django's WSGIHandler sets the script prefix from SCRIPT_NAME, so reverse()
returns mount-aware URLs.
"""
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="gowsgi-example-not-secret",
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        USE_TZ=True,
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402


def _text(s):
    return HttpResponse(s, content_type="text/plain; charset=utf-8")


def index(request):
    return _text("django: script_name={} url={} path={}\n".format(
        request.META.get("SCRIPT_NAME", ""), reverse("index"), request.path))


def hello(request, name):
    return _text("django hello {}\n".format(name))


urlpatterns = [
    path("", index, name="index"),
    path("hello/<str:name>", hello, name="hello"),
]

application = get_wsgi_application()
