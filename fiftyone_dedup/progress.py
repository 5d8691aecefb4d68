"""Progress reporting, the FiftyOne way, with a stage label.

Every long function takes ``progress`` as FiftyOne's own functions do:
``None`` (FiftyOne's default), ``True``/``False`` (a text bar or none), or a
callable that receives the progress bar at each update. The bar passed to
callables carries a ``label`` naming the stage ("Hashing images",
"Searching"), which the operators show in the App.

Text bars redraw one line with carriage returns, which a log file (output
that is neither a terminal nor a notebook) keeps as one endless line; there
they are written as plain lines instead, one every :data:`PLAIN_INTERVAL` seconds and one at
the end.
"""

import sys

import fiftyone.core.utils as fou

#: seconds between the plain progress lines written when output is not a
#: terminal
PLAIN_INTERVAL = 10.0


def _is_notebook():
    # notebooks show carriage-return bars well
    try:
        import fiftyone.core.context as foc

        return foc.is_notebook_context()
    except Exception:  # noqa: BLE001 - no context: not a notebook
        return False


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class ProgressBar(fou.ProgressBar):
    """FiftyOne's progress bar with a ``label`` attribute.

    Args:
        total (None): the number of iterations
        progress (None): ``None``, a bool, or a callable (see the module)
        label (None): the stage, shown before a text bar and available to
            callbacks as ``pb.label``
        **kwargs: passed to ``fiftyone.core.utils.ProgressBar``
    """

    def __init__(self, total=None, progress=None, label=None, **kwargs):
        self.label = label
        if label and "start_msg" not in kwargs and not callable(progress):
            kwargs["start_msg"] = label
        super().__init__(total=total, progress=progress, **kwargs)
        self._plain = not _is_terminal(sys.stdout) and not _is_notebook()
        self._last_plain = None

    def pause(self):
        if not getattr(self, "_plain", False):
            super().pause()  # plain lines leave no bar to erase

    def _draw(self, force=False, last=False):
        if self.quiet or not self._plain:
            return super()._draw(force=force, last=last)
        now = self.elapsed_time or 0.0
        if self.is_capturing_stdout:
            self._flush_capture()  # what was printed meanwhile, in order
        due = self._last_plain is None or now - self._last_plain >= PLAIN_INTERVAL
        if last or (due and self.iteration > 0):
            self._last_plain = now
            sys.stdout.write(self._plain_line(now, last) + "\n")
            sys.stdout.flush()
        if self.is_capturing_stdout and not last:
            self._start_capture()

    def _plain_line(self, elapsed, last):
        done = max(self.iteration, 0)
        total = self.total if self.has_total else None
        what = self.label or "Progress"
        count = f"{done}/{total}" if total is not None else f"{done}"
        pct = f" ({100.0 * done / total:.0f}%)" if total else ""
        tail = "done in" if last else "after"
        return f"{what}: {count}{pct} {self._iters_str}, {tail} {elapsed:.1f} s"


def callback(fn, dt=0.25):
    """Wraps ``fn(fraction, label)`` as a progress callable.

    Args:
        fn: a function of the completed fraction in ``[0, 1]`` and the stage
            label
        dt (0.25): the minimum number of seconds between calls

    Returns:
        a callable to pass as ``progress=``
    """

    def _call(pb):
        fraction = pb.progress if pb.has_total else None
        fn(fraction, getattr(pb, "label", None))

    return fou.report_progress(_call, dt=dt)
