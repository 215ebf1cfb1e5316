#!/usr/bin/env python3
"""A plain threaded HTTP server (standard library only) with a slow endpoint, for the tests that need to see
exactly when the app gets SIGTERM.

  slow_http.py --port PORT [--on-term graceful|ignore] [--slow SECONDS]

Prints `ready PORT` once listening, `slow-start` when a /slow request begins, and `got SIGTERM <unix time>` when
the signal arrives. `graceful`: stop accepting (the listening socket is closed), let every in-flight request
finish, exit 0. `ignore`: SIGTERM is ignored (SIG_IGN), like a server that never handles it."""
import argparse
import http.server
import os
import signal
import socketserver
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--on-term", choices=["graceful", "ignore"], default="graceful")
parser.add_argument("--slow", type=float, default=2.0)
options = parser.parse_args()


def say(line):
    os.write(1, (line + "\n").encode())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/slow":
            say("slow-start %d" % os.getpid())
            time.sleep(options.slow)
            body = b"slow done\n"
        elif self.path == "/fast":
            body = b"fast\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # Request threads are joined by server_close(): that is the graceful part.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


server = Server(("127.0.0.1", options.port), Handler)
stop = threading.Event()


def on_term(num, _frame):
    say("got SIGTERM %.6f" % time.time())
    stop.set()


signal.signal(signal.SIGTERM, signal.SIG_IGN if options.on_term == "ignore" else on_term)
threading.Thread(target=server.serve_forever, daemon=True).start()
say("ready %d" % options.port)
stop.wait()
server.shutdown()
server.server_close()
say("stopped")
