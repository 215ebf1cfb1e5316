#!/usr/bin/env python3
"""A grpcio server with one slow unary method, `/test.Slow/Call` (bytes in, bytes out: generic handlers, no protoc
code generation). On SIGTERM it calls `server.stop(grace)`: new calls are refused, calls in flight get `grace`
seconds to finish. Then it exits 0.

  grpc_server.py [--slow SECONDS] [--grace SECONDS]

Prints `ready PORT` once serving on 127.0.0.1 (the port is chosen by the kernel), `slow-start` when a call begins,
`got SIGTERM`, and `stopped` when server.stop() has finished."""
import argparse
import os
import signal
import threading
import time
from concurrent import futures

import grpc

parser = argparse.ArgumentParser()
parser.add_argument("--slow", type=float, default=2.0)
parser.add_argument("--grace", type=float, default=10.0)
options = parser.parse_args()


def say(line):
    os.write(1, (line + "\n").encode())


def call(request, context):
    say("slow-start %d" % os.getpid())
    time.sleep(options.slow)
    return b"slow done: " + request


handler = grpc.method_handlers_generic_handler(
    "test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(call)}
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
stop = threading.Event()


def on_term(num, _frame):
    say("got SIGTERM %.6f" % time.time())
    stop.set()


signal.signal(signal.SIGTERM, on_term)
server.start()
say("ready %d" % port)
stop.wait()
server.stop(options.grace).wait()
say("stopped")
