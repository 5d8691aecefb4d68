"""The base of the long-running operators: how a run is called from Python,
run now in the App with progress, or scheduled (delegated), and how its
errors reach the screen.

An operator built on :class:`RunOperator` states its form
(:meth:`RunOperator.form`), its work (:meth:`RunOperator.work`), what a
scheduled run keeps on its record (:meth:`RunOperator.record`) and what the
App shows when an immediate run ends (:meth:`RunOperator.show`).
"""

import logging
import queue
import threading

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_dedup import progress as fprogress
from fiftyone_dedup.app import appui

logger = logging.getLogger(__name__)

#: the plugin's name (``name:`` in fiftyone.yml)
PLUGIN_NAME = "@fiftyone_dedup/dedup"


def uri(name):
    """The URI of the plugin's operator ``name``."""
    return f"{PLUGIN_NAME}/{name}"


def execute_operator(operator, sample_collection, params, delegate):
    """Runs ``operator`` on a dataset or view through FiftyOne's machinery.

    Args:
        operator: the operator
        sample_collection: a dataset or view (the run's target)
        params: the form's parameters
        delegate: queue a scheduled run instead of running now

    Returns:
        an ``ExecutionResult``
    """
    if isinstance(sample_collection, fo.DatasetView):
        ctx = dict(view=sample_collection)
    else:
        ctx = dict(dataset=sample_collection)
    return foo.execute_operator(
        operator.uri, ctx, params=params, request_delegation=delegate
    )


def run_in_app(ctx, work):
    """Runs ``work(progress)`` and yields App progress messages meanwhile.

    Delegated runs report through ``ctx.set_progress`` and run inline; an
    immediate run works in a thread while this generator streams progress
    to the App.

    Args:
        ctx: the execution context
        work: a function of a ``progress`` callable returning a result

    Yields:
        App messages

    Returns:
        what ``work`` returned (use ``result = yield from run_in_app(...)``)
    """
    if ctx.delegated:
        return run_delegated(ctx, work)

    box = {}
    updates = queue.Queue()

    def report(fraction, label):
        updates.put((fraction, label))

    def target():
        try:
            box["result"] = work(fprogress.callback(report, dt=0.25))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e
        finally:
            updates.put(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while True:
        item = updates.get()
        if item is None:
            break
        fraction, label = item
        yield ctx.trigger(
            "set_progress", dict(progress=fraction, label=label or "Working")
        )
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_delegated(ctx, work):
    """Runs ``work(progress)`` in a delegated (scheduled) run, reporting
    progress and the stage label on the run's record.

    Args:
        ctx: the execution context
        work: a function of a ``progress`` callable returning a result

    Returns:
        what ``work`` returned
    """

    def report(fraction, label):
        ctx.set_progress(progress=fraction, label=label)

    return work(fprogress.callback(report, dt=1.0))


def shown_errors(ctx, title, messages):
    """Yields an App generator's messages; an exception it raises is shown
    as an error dialog and notification (FiftyOne drops exceptions raised in
    a generator operator: nothing would reach the screen).

    Args:
        ctx: the execution context
        title: what the run does, such as ``"Moving duplicates"``
        messages: the operator's generator of App messages

    Yields:
        App messages
    """
    if not ctx.request_params.get("operator_uri"):
        # only the App's requests name the operator: Python callers
        # (foo.execute_operator) get the exception itself
        yield from messages
        return
    try:
        yield from messages
    except Exception as e:  # noqa: BLE001 - shown in the App, and logged
        logger.warning("%s failed: %s", title, e, exc_info=True)
        yield from appui.error_messages(ctx, title, e)


def target_size(ctx):
    """The number of samples in the target, or None if there is none yet."""
    try:
        return len(ctx.target_view())
    except Exception:  # noqa: BLE001 - no dataset yet: let the form say so
        return None


class RunOperator(foo.Operator):
    """An operator whose run may take long: run now with progress in the
    App, or scheduled; callable from Python.

    Subclasses set :attr:`name`, :attr:`label`, :attr:`description`,
    :attr:`title`, :attr:`form_label` (and :attr:`result_labels` for a
    result schema), and implement :meth:`form` and :meth:`work`.
    """

    #: the operator's name (its URI's last part)
    name = None
    #: its label in the operator browser
    label = None
    #: its description in the operator browser
    description = None
    #: whether it offers a target picker (dataset, view, selected samples)
    view_target = True
    #: what a run does, for error messages: ``"Moving duplicates"``
    title = None
    #: the form's title
    form_label = None
    #: what the result shows, ``key -> label`` (the output schema), or None
    result_labels = None
    #: the result dialog's title (the output schema's label)
    result_title = None

    @property
    def config(self):
        return foo.OperatorConfig(
            name=self.name,
            label=self.label,
            description=self.description,
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            view_target=self.view_target,
        )

    def run(self, sample_collection, params, delegate=False):
        """Runs the operator from Python (what ``__call__`` does).

        Args:
            sample_collection: a dataset or view
            params: the form's parameters
            delegate (False): schedule instead of running now

        Returns:
            an ``ExecutionResult``
        """
        return execute_operator(self, sample_collection, params, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        self.form(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.form_label))

    def resolve_execution_options(self, ctx):
        return appui.execution_options(target_size(ctx))

    def execute(self, ctx):
        if ctx.delegated:
            return self.record(run_delegated(ctx, self.work(ctx)))
        return shown_errors(ctx, self.title, self._in_app(ctx))

    def _in_app(self, ctx):
        result = yield from run_in_app(ctx, self.work(ctx))
        yield ctx.ops.reload_dataset()
        yield from self.show(ctx, result)

    def resolve_output(self, ctx):
        if self.result_labels is None:
            return None
        return appui.output_schema(self.result_labels, self.result_title)

    def form(self, ctx, inputs):
        """Adds the form's fields to ``inputs`` (flagging invalid values).

        Args:
            ctx: the execution context
            inputs: the form's ``types.Object``
        """
        raise NotImplementedError

    def work(self, ctx):
        """Checks the parameters and returns the run's work.

        Args:
            ctx: the execution context

        Returns:
            a function of a ``progress`` callable that runs and returns the
            result

        Raises:
            ValueError: for bad parameters (before any work)
        """
        raise NotImplementedError

    def record(self, result):
        """What a scheduled run keeps on its record (``fiftyone delegated
        output``): a dict, or None."""
        return None

    def show(self, ctx, result):
        """The App messages after an immediate run: dialogs, notifications.

        Args:
            ctx: the execution context
            result: what the work returned

        Returns:
            an iterable of messages
        """
        return ()
