"""Imports fine but has no `application` attribute, on purpose."""

not_the_application = None
