"""App-side pieces shared by the operators: how runs are offered, and the
dialog that says what a run found.

Knows nothing of the engine; the operators fill these in.
"""

import logging

import fiftyone.operators as foo
import fiftyone.operators.types as types

logger = logging.getLogger(__name__)

#: targets with more samples than this default to a scheduled run in the App
LARGE_TARGET = 2000

#: how many unreadable files a result dialog lists by name
MAX_LISTED_FAILURES = 5


def execution_options(num_samples):
    """Offers a run both now and scheduled; large targets default to scheduled.

    Args:
        num_samples: the size of the target, or None if unknown

    Returns:
        a ``fiftyone.operators.ExecutionOptions``
    """
    return foo.ExecutionOptions(
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        default_choice_to_delegated=bool(
            num_samples and num_samples > LARGE_TARGET
        ),
    )


def large_target_notice(inputs, num_samples):
    """Adds a notice recommending a scheduled run for a large target.

    Args:
        inputs: the form's ``types.Object``
        num_samples: the size of the target
    """
    if num_samples <= LARGE_TARGET:
        return
    inputs.view(
        "large_target",
        types.Notice(
            label="Large target: 'Schedule' is preselected",
            description=(
                "A scheduled run goes on in the background while you keep "
                "working; a delegated worker (`fiftyone delegated launch`) "
                "runs it. Choose 'Execute' in the button's menu to run it "
                "now instead."
            ),
        ),
    )


def result_dialog(ctx, title, rows, notes=(), buttons=()):
    """A message that opens the App's output dialog with a run's result.

    Args:
        ctx: the execution context
        title: the dialog's title
        rows: ``(name, label, value)`` triples, shown as label: value
        notes (()): markdown paragraphs shown below the rows
        buttons (()): ``(name, label, operator_uri, params)`` tuples, each a
            button that runs an operator

    Returns:
        the ``show_output`` message to yield
    """
    outputs = types.Object()
    outputs.view("title", types.Header(label=title, divider=True))
    results = {}
    for name, label, value in rows:
        outputs.str(name, label=label)
        results[name] = str(value)
    for i, note in enumerate(notes):
        outputs.md(note, name=f"note_{i}")
    for name, label, operator, params in buttons:
        outputs.view(
            name, types.Button(label=label, operator=operator, params=params)
        )
    schema = types.Property(outputs, view=types.View(label=title))
    return ctx.ops.show_output(schema.to_json(), results)


def rows(labels, values):
    """The ``(key, label, value)`` rows of :func:`result_dialog`.

    Args:
        labels: ``key -> label``, in the order shown
        values: ``key -> value``

    Returns:
        a list of triples
    """
    return [(key, label, values.get(key)) for key, label in labels.items()]


def output_schema(labels, title):
    """The output schema of an operator whose result holds ``labels``' keys.

    Args:
        labels: ``key -> label``
        title: the schema's label

    Returns:
        a ``types.Property``
    """
    outputs = types.Object()
    for key, label in labels.items():
        outputs.str(key, label=label)
    return types.Property(outputs, view=types.View(label=title))


def summary_text(summary):
    """A duplicates run's summary in one line, for notifications.

    Args:
        summary: the run's summary dict

    Returns:
        a string
    """
    text = (
        f"{summary['num_duplicates']} duplicate(s) in {summary['num_groups']} "
        f"group(s) among {summary['num_samples']} sample(s)"
    )
    if summary.get("num_failed"):
        text += f"; {summary['num_failed']} image(s) could not be read"
    return text


def failures_note(failures, total_failed=None):
    """Markdown naming the first unreadable files and why.

    Args:
        failures: ``{"filepath", "error"}`` dicts
        total_failed (None): how many failed in all; defaults to
            ``len(failures)``

    Returns:
        a markdown string, or None if nothing failed
    """
    total = len(failures) if total_failed is None else total_failed
    if not total:
        return None
    lines = [f"**{total} image(s) could not be read** (skipped):", ""]
    for f in failures[:MAX_LISTED_FAILURES]:
        lines.append(f"- `{f['filepath']}`: {f['error']}")
    if total > MAX_LISTED_FAILURES:
        lines.append(f"- ... and {total - MAX_LISTED_FAILURES} more")
    return "\n".join(lines)


def error_messages(ctx, title, error):
    """What the App shows when an operator's run raised: a dialog and an
    error notification, both with the exception's own message.

    Args:
        ctx: the execution context
        title: what was being done, such as ``"Moving duplicates"``
        error: the exception

    Returns:
        the messages to yield
    """
    message = str(error) or type(error).__name__
    outputs = types.Object()
    outputs.view("title", types.Header(label=f"{title} failed", divider=True))
    outputs.view("error", types.Error(label=message))
    schema = types.Property(outputs, view=types.View(label=f"{title} failed"))
    return [
        ctx.ops.show_output(schema.to_json(), {}),
        ctx.ops.notify(f"{title} failed: {message}", variant="error"),
    ]
