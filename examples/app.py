"""A WSGI app with a health endpoint and a slow one, to watch in-flight requests finish during a stop.

Dockerfile.example copies it into the image; `gunicorn app:application` serves it.
"""
import sys
import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        body = b"ok\n"
    elif path == "/slow":
        print("app: slow request started", file=sys.stderr, flush=True)
        time.sleep(2)
        body = b"slow request finished\n"
    else:
        body = b"hello from gunicorn under grace-init\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
