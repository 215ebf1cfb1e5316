#!/bin/sh
# The entrypoint many images have: some setup, then the server started in the background (no `exec`), then
# `wait`. On SIGTERM this shell dies at once; without an init that waits for the server, the container's PID 1
# would be gone and the kernel would kill the server with its requests in flight.
#
#   entrypoint.sh SERVER [ARGS...]
echo "entrypoint: setting up"
"$@" &
echo "entrypoint: started server $!"
wait
echo "entrypoint: wait returned $?"
