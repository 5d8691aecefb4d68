"""A fork server that runs moves and restores which kill themselves
(SIGKILL) at their K-th step, for the kill -9 tests.

The server imports FiftyOne but never connects to the database; for each
request it forks a child that connects afresh (no database client exists
before the fork, so the child is as clean as a new process, and starting
one costs a fraction of a new interpreter). A step is any call that changes
something: a journal record, a rename, an atomic write, a copy, a database
write. The child dies right before its K-th step (or, with ``after_copy``,
right after that many copies across file systems, before a source is
removed), exactly as ``kill -9`` leaves a process: no ``finally`` block, no
exit handler runs.

Protocol: one JSON request per line on stdin (``mode`` ``"move"`` or
``"restore"``, ``dataset``, ``duplicates_dir``, ``kill_at`` (0: run to the
end), ``after_copy``, ``options`` (keyword arguments), ``stderr`` (a log
file)); the child prints ``{"steps": N, "marks": {...}}`` if it finishes
(the step at which each phase ended), then the server prints ``{"rc": code}``.
"""

import functools
import json
import os
import signal
import sys
import traceback


def _run_child(req):
    import fiftyone as fo
    import fiftyone.core.collections as foc
    import fiftyone.core.dataset as fod

    from fiftyone_dedup.moves import move
    from fiftyone_dedup.moves import restore
    from fiftyone_dedup.moves import fileops
    from fiftyone_dedup.moves import manifest as mf

    kill_at = req.get("kill_at", 0)
    after_copy = req.get("after_copy", 0)
    steps, copies, marks = [0], [0], {}

    def step(fn):
        @functools.wraps(fn)
        def wrapped(*a, **k):
            steps[0] += 1
            if steps[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)

        return wrapped

    real_append = step(mf.Journal.append)

    def append(self, record, sync=False):
        real_append(self, record, sync=sync)
        kind = record.get("type")
        if kind in ("planned", "complete", "restore_complete"):
            marks[kind] = steps[0]
        elif kind in ("phase", "restore_phase"):
            marks[f"{kind}:{record.get('name')}"] = steps[0]

    mf.Journal.append = append
    fileops.rename_noreplace = step(fileops.rename_noreplace)
    fileops.atomic_write = step(fileops.atomic_write)
    real_copy = step(fileops.copy_verified)

    def copy(*a, **k):
        real_copy(*a, **k)
        copies[0] += 1
        if copies[0] == after_copy:
            os.kill(os.getpid(), signal.SIGKILL)

    fileops.copy_verified = copy
    for cls, names in (
        (foc.SampleCollection, ("set_values", "tag_samples", "untag_samples")),
        (fod.Dataset, ("delete_samples", "_upsert_samples", "save", "delete")),
    ):
        for name in names:
            setattr(cls, name, step(getattr(cls, name)))

    options = req.get("options") or {}
    if req["mode"] == "move":
        move.move_duplicates(fo.load_dataset(req["dataset"]), req["duplicates_dir"], **options)
    else:
        restore.restore(req["duplicates_dir"], **options)
    return {"steps": steps[0], "marks": marks}


def serve():
    """Serves requests from stdin until it closes."""
    import fiftyone  # noqa: F401 - imported once, before any fork
    import fiftyone_dedup.moves.move  # noqa: F401
    import fiftyone_dedup.moves.restore  # noqa: F401

    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                fd = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 2)
                result = _run_child(req)
                print(json.dumps(result), flush=True)
            except BaseException:  # noqa: BLE001 - reported to the test
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
