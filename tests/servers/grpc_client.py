#!/usr/bin/env python3
"""Makes N concurrent calls to `/test.Slow/Call` and prints one line per call, in call order:
`call I ok SECONDS` or `call I error STATUS_CODE SECONDS`, then `done`.

  grpc_client.py --port PORT [--calls N] [--deadline SECONDS] [--go-on-stdin]

Prints `sent` once every call has been started, so a test can wait on that. With --go-on-stdin it first prints
`armed` (channel created, not connected yet) and waits for a line on stdin before calling: a new connection at
a moment the test chooses."""
import argparse
import sys
import threading
import time

import grpc

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--calls", type=int, default=1)
parser.add_argument("--deadline", type=float, default=15.0)
parser.add_argument("--go-on-stdin", action="store_true")
options = parser.parse_args()

channel = grpc.insecure_channel("127.0.0.1:%d" % options.port)
method = channel.unary_unary("/test.Slow/Call")
results = [None] * options.calls


def one(i):
    started = time.monotonic()
    try:
        reply = method(b"%d" % i, timeout=options.deadline)
        ok = reply == b"slow done: %d" % i
        results[i] = "call %d %s %.3f" % (i, "ok" if ok else "bad-reply", time.monotonic() - started)
    except grpc.RpcError as e:
        results[i] = "call %d error %s %.3f" % (i, e.code().name, time.monotonic() - started)


if options.go_on_stdin:
    print("armed", flush=True)
    sys.stdin.readline()

threads = [threading.Thread(target=one, args=(i,)) for i in range(options.calls)]
for t in threads:
    t.start()
print("sent", flush=True)
for t in threads:
    t.join(options.deadline + 5)
for i, line in enumerate(results):
    print(line or "call %d unfinished" % i, flush=True)
print("done", flush=True)
channel.close()
