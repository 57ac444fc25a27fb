"""Single-file Django project that reports the POST and FILES it parsed."""
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="gowsgi-test-not-secret",
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def form(request):
    up = request.FILES.get("file")
    return HttpResponse("django name={} file={}:{}\n".format(
        request.POST.get("name"), up.name if up is not None else None, up.size if up is not None else -1),
        content_type="text/plain; charset=utf-8")


urlpatterns = [path("form", form)]

application = get_wsgi_application()
