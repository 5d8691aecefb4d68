#!/bin/sh
# The image's entrypoint (under tini): runs fiftyone-dedup with the given
# arguments, or `fiftyone ...` when the first argument is "fiftyone", then
# waits for FiftyOne's mongod to shut down. It stops by itself once its
# client has exited, but a container ends as soon as its main process does,
# which killed mongod before it had closed the database: on a volume, the
# next run then saw stale counts (0 samples in the App for a dataset of 10).

# a handler, not SIG_IGN (which the command would inherit): tini -g passes
# signals to the whole process group, so the command gets them, and this
# script only waits for it
trap : INT TERM

if [ "$1" = fiftyone ]; then
    shift
    fiftyone "$@"
else
    fiftyone-dedup "$@"
fi
rc=$?

# wait (at most a minute) while a mongod is running; the App server, if any,
# holds nothing that could be lost
mongod_running() {
    for d in /proc/[0-9]*; do
        read -r comm 2>/dev/null < "$d/comm" || continue
        [ "$comm" = mongod ] && return 0
    done
    return 1
}
i=0
while mongod_running && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
exit $rc
