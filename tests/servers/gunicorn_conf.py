"""gunicorn settings for the tests (`gunicorn --config tests/servers/gunicorn_conf.py ...`).

Each worker prints `worker ready PID` once its signal handlers are installed and the app is loaded, so a test
can wait for every worker before it sends a signal. A worker that is still booting has the arbiter's handlers,
which only queue the signal in the worker's copy of the arbiter's state: gunicorn loses a SIGTERM that arrives
in that window, and the arbiter then waits its whole --graceful-timeout for that worker."""
import os


def post_worker_init(worker):
    os.write(1, b"worker ready %d\n" % worker.pid)
