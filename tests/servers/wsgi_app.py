"""WSGI app for gunicorn: `/slow` takes SLOW_SECONDS (default 2) and announces itself on stdout, `/fast` answers
at once. Every body is sent with a Content-Length, so a client can tell a complete response from a cut one."""
import os
import time

SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "2"))


def say(line):
    # One write per line: several workers share the pipe, and the test waits on these lines.
    os.write(1, (line + "\n").encode())


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        say("slow-start %d" % os.getpid())
        time.sleep(SLOW_SECONDS)
        body = b"slow done\n"
    elif path == "/fast":
        body = b"fast\n"
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
