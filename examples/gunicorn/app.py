"""A WSGI app for the gunicorn example: answers with its release's VERSION file, read
once at import, so that each generation says which code served a request."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "VERSION")) as f:
    VERSION = f.read().strip()


def app(environ, start_response):
    body = (VERSION + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Version", VERSION)])
    return [body]
