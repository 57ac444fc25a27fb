"""Fails at import time, as an app with a missing dependency would."""
raise ImportError("broken on purpose")
