"""Progress reporting, the FiftyOne way, with a stage label.

Every long function takes ``progress`` as FiftyOne's own functions do:
``None`` (FiftyOne's default), ``True``/``False`` (a text bar or none), or a
callable that receives the progress bar at each update. The bar passed to
callables carries a ``label`` naming the stage ("Hashing images",
"Searching"), which the operators show in the App.
"""

import fiftyone.core.utils as fou


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
