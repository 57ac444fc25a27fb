"""basic.application wrapped in wsgiref.validate.validator (stdlib only).

The app dir is first on sys.path, so `import basic` finds basic.py.
Note: the validator only allows wsgi.input.read(size), so /echo (which calls
read() with no size) fails here by design; use /echo-sized instead.
"""
import wsgiref.validate

import basic

application = wsgiref.validate.validator(basic.application)
