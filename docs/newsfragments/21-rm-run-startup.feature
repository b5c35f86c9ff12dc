Faster removal, runs and start-up (issue 21): a bulk `docker rm` of 200 created containers now
beats dockerd (4 DB round trips per container instead of 5, batched event writes, no network
teardown for a container that holds nothing, one unlink/rmdir per entry of the daemon's own
trees); `docker run --rm` no longer pays crun's seccomp compilation after the first container
of a profile (crun's own compiled filter is handed to the next ones) nor waits ~25 ms for the
kernel to delete a stopped container's veths; `docker system df` measures writable layers in
batches; the docstring-free code of each module is cached, so a start no longer strips (or,
without .pyc files, compiles) hundreds of modules again. New bench rows: one `docker rm` of 200
containers; `docker cp` in and out as medians of alternating rounds.
