"""The move operators: duplicates' files out to a folder, undoably
(:class:`MoveDuplicates`), and back (:class:`RestoreDuplicates`), over
:func:`fiftyone_dedup.moves.move.move_duplicates` and
:func:`~fiftyone_dedup.moves.restore.restore`. Both forms show the plan (a
dry run) and ask to confirm it.
"""

import errno
import logging
import os

import fiftyone.operators.types as types

from fiftyone_dedup.app import appui
from fiftyone_dedup.app import base
from fiftyone_dedup.app import forms
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.moves import arguments
from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import fileops

logger = logging.getLogger(__name__)


def _duplicates_dir_input(ctx, inputs, description, moving=True):
    """The duplicates folder field; returns its absolute path or None.

    ``moving`` (True) also refuses a folder inside the dataset's folder
    (restoring reads the folder earlier moves used)."""
    prop = inputs.str(
        "duplicates_dir", required=True, label="Duplicates folder", description=description,
    )
    value = ctx.params.get("duplicates_dir")
    if not value:
        return None
    try:
        path = arguments.check_dir_arg(value)
        problem = _folder_problem(ctx.dataset if moving else None, value)
        if problem is None:
            return path
    except ValueError as e:
        problem = str(e)
    forms.mark_invalid(prop, problem)
    inputs.view("folder_error", types.Error(label="Cannot use this folder", description=problem))
    return None


def _folder_problem(dataset, value):
    """Why the App cannot use ``value`` as a duplicates folder, or None:
    it must be absolute, outside the dataset's folder, and creatable and
    writable (checked without creating anything)."""
    path = os.path.expanduser(str(value).strip())
    if not os.path.isabs(path):
        return (
            f"Give an absolute folder path, not {value!r}: a relative one "
            f"would be taken from the App server's working directory ({os.getcwd()})"
        )
    path = os.path.normpath(path)
    # files that earlier moves put in the folder do not make it the dataset's
    paths = [
        p for p in (dataset.values("filepath") if dataset is not None else [])
        if not p.startswith(path + os.sep)
    ]
    if paths:
        home = os.path.commonpath([os.path.dirname(p) for p in paths])
        if home != os.sep and fileops.is_inside(path, home):
            return (
                f"The duplicates folder {path} is inside the dataset's folder "
                f"{home}; choose a folder outside it"
            )
    parent = path
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    # the words of the move itself (moves.move), checked without creating
    if not os.path.isdir(parent):
        return (
            f"Cannot write to the duplicates folder {path}: "
            f"{os.strerror(errno.ENOTDIR)} ({parent} is not a folder)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"Cannot write to the duplicates folder {path}: "
            f"{os.strerror(errno.EACCES)} ({parent} is not writable)"
        )
    return None


def _confirm_input(ctx, inputs, label):
    prop = inputs.bool("confirm", default=False, required=True, label=label)
    if not ctx.params.get("confirm", False):
        forms.mark_invalid(prop, "Review the plan above and confirm")


def _plan_markdown(lines, limit=15):
    shown = lines if limit is None else lines[:limit]
    text = "\n".join(f"- `{line}`" for line in shown)
    if limit is not None and len(lines) > limit:
        text += f"\n- ... and {len(lines) - limit} more"
    return text


#: what a move's result shows: key -> label
_MOVE_LABELS = {
    "num_moved": "Images moved",
    "num_skipped": "Duplicates not moved",
    "duplicates_dir": "Duplicates folder",
    "manifest": "Manifest (what undo reads)",
}

#: what a restore's result shows: key -> label
_RESTORE_LABELS = {
    "num_restored": "Images put back",
    "num_restored_labels": "Annotation files put back",
    "duplicates_dir": "Duplicates folder",
}


def _move_values(result):
    return {
        "num_moved": result.num_moved,
        "num_skipped": result.num_skipped,
        "duplicates_dir": result.duplicates_dir,
        "manifest": result.manifest,
        "move_id": result.move_id,
    }


def _restore_values(result):
    return {
        "num_restored": result.num_restored,
        "num_restored_labels": result.num_restored_labels,
        "duplicates_dir": result.duplicates_dir,
    }


def _move_notes(result):
    """Markdown: why duplicates stayed, and other notes."""
    notes = []
    n = appui.MAX_LISTED_FAILURES
    if result.skipped:
        lines = [f"**{len(result.skipped)} duplicate(s) not moved:**", ""]
        lines += [f"- `{s['path']}`: {s['reason']}" for s in result.skipped[:n]]
        if len(result.skipped) > n:
            lines.append(f"- ... and {len(result.skipped) - n} more (see the manifest)")
        notes.append("\n".join(lines))
    if result.messages:
        notes.append("\n".join(f"- {msg}" for msg in result.messages))
    return notes


class MoveDuplicates(base.RunOperator):
    """Moves a run's duplicate files into a folder, undoably, with their
    labels or without."""

    name = "move_duplicates"
    label = "Dedup: move duplicates"
    description = (
        "Move the duplicates' files into a folder (with their annotations), "
        "with a manifest to undo the move"
    )
    title = "Moving duplicates"
    form_label = "Move duplicates"
    result_labels = _MOVE_LABELS
    result_title = "Duplicates moved"

    def __call__(
        self,
        sample_collection,
        duplicates_dir,
        run_key=field_names.DEFAULT_RUN_KEY,
        labels="keep",
        on_samples="keep",
        tag="moved",
        delegate=False,
    ):
        """Moves duplicates through the operator (see
        :func:`fiftyone_dedup.moves.move.move_duplicates`).

        Args:
            sample_collection: a dataset or view
            duplicates_dir: the folder to move them into
            run_key ("dedup"): the duplicates run
            labels ("keep"): ``"keep"`` or ``"drop"``
            on_samples ("keep"): ``"keep"``, ``"delete"`` or ``"dataset"``
            tag ("moved"): the tag of moved samples
            delegate (False): schedule instead of running now

        Returns:
            the move's summary dict (see
            :func:`fiftyone_dedup.moves.restore.list_moves`), or the
            ``ExecutionResult`` of a scheduled run
        """
        params = dict(
            run_key=run_key, duplicates_dir=str(duplicates_dir), labels=labels,
            on_samples=on_samples, tag=tag, confirm=True,
        )
        result = self.run(sample_collection, params, delegate)
        if delegate:
            return result
        name = sample_collection._root_dataset.name
        moves = [m for m in restore.list_moves(duplicates_dir) if m.get("dataset") == name]
        return moves[-1] if moves else None

    def form(self, ctx, inputs):
        run_key = forms.existing_run_input(ctx, inputs)
        if run_key is not None:
            dup = _duplicates_dir_input(
                ctx, inputs,
                "A folder on the machine running FiftyOne. Each duplicate "
                "moves there under its dataset folder's name, at the same "
                "relative path; a manifest there lets you undo the move",
            )
            labels = forms.choices(
                types.RadioGroup(),
                ("keep", "Keep labels", "The annotations travel with the images"),
                ("drop", "Drop labels", "Images only; the moved samples lose their labels"),
            )
            inputs.enum("labels", labels.values(), default="keep", label="Labels", view=labels)
            samples = forms.choices(
                types.RadioGroup(),
                ("keep", "Keep and tag them", "With their new filepath and a tag"),
                ("delete", "Delete them from the dataset"),
                ("dataset", "Move them to '<dataset>-duplicates'"),
            )
            inputs.enum(
                "on_samples", samples.values(), default="keep", label="Moved samples", view=samples,
            )
            inputs.str(
                "tag", default="moved", required=False, label="Tag",
                description="The tag of moved samples",
            )
            if dup is not None:
                self._preview(ctx, inputs, run_key, dup)

    def _preview(self, ctx, inputs, run_key, dup):
        try:
            plan = move.move_duplicates(
                ctx.target_view(), dup, run_key=run_key,
                labels=ctx.params.get("labels", "keep"),
                on_samples=ctx.params.get("on_samples", "keep"),
                tag=ctx.params.get("tag", "moved") or None,
                dry_run=True,
            )
        except Exception as e:  # noqa: BLE001 - shown in the form
            prop = inputs.view("plan_error", types.Error(label="Cannot move", description=str(e)))
            forms.mark_invalid(prop, str(e))
            return
        if plan.num_planned == 0:
            prop = inputs.view(
                "nothing", types.Warning(
                    label="Nothing to move",
                    description=f"{plan.num_skipped} duplicate(s) cannot move",
                ),
            )
            forms.mark_invalid(prop, "Nothing to move")
            return
        inputs.view(
            "plan",
            types.Notice(
                label=f"{plan.num_planned} image(s) will move to {dup}; "
                f"{plan.num_skipped} will not"
            ),
        )
        # files and skips are cut at 15 each; every note is shown
        lines = plan.format(limit=15).splitlines()[1:]
        inputs.md(_plan_markdown(lines, limit=None), name="plan_lines")
        _confirm_input(ctx, inputs, "Move these files")

    def work(self, ctx):
        view = ctx.target_view()
        params = ctx.params

        def work(progress):
            return move.move_duplicates(
                view,
                params["duplicates_dir"],
                run_key=params.get("run_key", field_names.DEFAULT_RUN_KEY),
                labels=params.get("labels", "keep"),
                on_samples=params.get("on_samples", "keep"),
                tag=params.get("tag", "moved") or None,
                progress=progress,
            )

        return work

    def record(self, result):
        return _move_values(result)

    def show(self, ctx, result):
        buttons = []
        if result.num_moved:
            buttons.append((
                "undo", "Undo this move", base.uri("restore_duplicates"),
                dict(duplicates_dir=result.duplicates_dir, move_id=result.move_id, confirm=True),
            ))
        yield appui.result_dialog(
            ctx, "Duplicates moved", appui.rows(_MOVE_LABELS, _move_values(result)),
            notes=_move_notes(result), buttons=buttons,
        )
        yield ctx.ops.notify(
            f"Moved {result.num_moved} image(s) to {result.duplicates_dir}"
            + (f"; {result.num_skipped} not moved" if result.num_skipped else ""),
            variant="warning" if result.num_skipped else "success",
        )


class RestoreDuplicates(base.RunOperator):
    """Undoes moves of duplicates from their manifests."""

    name = "restore_duplicates"
    label = "Dedup: restore moved duplicates"
    description = "Put moved duplicates back: files, annotation files and samples"
    view_target = False
    title = "Restoring duplicates"
    form_label = "Restore moved duplicates"
    result_labels = _RESTORE_LABELS
    result_title = "Duplicates restored"

    def __call__(self, sample_collection, duplicates_dir, move_id=None, delegate=False):
        """Restores through the operator (see
        :func:`fiftyone_dedup.moves.restore.restore`).

        Args:
            sample_collection: the dataset whose moves to undo
            duplicates_dir: the duplicates folder
            move_id (None): one move; all of the dataset's by default
            delegate (False): schedule instead of running now

        Returns:
            the summaries of the dataset's moves in the folder, or the
            ``ExecutionResult`` of a scheduled run
        """
        params = dict(duplicates_dir=str(duplicates_dir), move_id=move_id or "all", confirm=True)
        result = self.run(sample_collection, params, delegate)
        if delegate:
            return result
        name = sample_collection._root_dataset.name
        return [m for m in restore.list_moves(duplicates_dir) if m.get("dataset") == name]

    def form(self, ctx, inputs):
        dup = _duplicates_dir_input(ctx, inputs, "The duplicates folder of the move", moving=False)
        if dup is None:
            return
        moves = [
            m for m in restore.list_moves(dup)
            if m.get("dataset") == ctx.dataset.name
            and m.get("state") in ("moving", "moved", "restoring")
        ]
        if not moves:
            prop = inputs.view(
                "no_moves", types.Warning(label=f"No moves of this dataset to undo in {dup}")
            )
            forms.mark_invalid(prop, "Nothing to restore")
            return
        choices = types.DropdownView()
        choices.add_choice("all", label=f"All {len(moves)} move(s), newest first")
        for m in reversed(moves):
            choices.add_choice(
                m["move_id"], label=f"{m['move_id']}: {m['num_moved']} file(s), {m['state']}"
            )
        inputs.enum("move_id", choices.values(), default="all", label="Move", view=choices)
        move_id = ctx.params.get("move_id", "all")
        try:
            plan = restore.restore(
                dup, move_id=None if move_id == "all" else move_id,
                dataset_name=ctx.dataset.name, dry_run=True,
            )
            inputs.view("plan", types.Notice(label=f"{plan.num_restored} file(s) will go back"))
            for i, msg in enumerate(plan.messages):
                inputs.view(f"note_{i}", types.Warning(label=msg))
            _confirm_input(ctx, inputs, "Restore these files")
        except Exception as e:  # noqa: BLE001 - shown in the form
            prop = inputs.view(
                "plan_error", types.Error(label="Cannot restore", description=str(e))
            )
            forms.mark_invalid(prop, str(e))

    def resolve_execution_options(self, ctx):
        return appui.execution_options(None)

    def work(self, ctx):
        dup = ctx.params["duplicates_dir"]
        move_id = ctx.params.get("move_id", "all")
        name = ctx.dataset.name

        def work(progress):
            return restore.restore(
                dup, move_id=None if move_id == "all" else move_id, dataset_name=name,
                progress=progress,
            )

        return work

    def record(self, result):
        return _restore_values(result)

    def show(self, ctx, result):
        notes = [f"- {msg}" for msg in result.messages[:appui.MAX_LISTED_FAILURES]]
        yield appui.result_dialog(
            ctx, "Duplicates restored", appui.rows(_RESTORE_LABELS, _restore_values(result)),
            notes=["\n".join(notes)] if notes else [],
        )
        yield ctx.ops.notify(
            f"Restored {result.num_restored} image(s) from {result.duplicates_dir}"
            + (
                f" ({len(result.messages)} note(s): {result.messages[0]})"
                if result.messages else ""
            ),
            variant="warning" if result.messages else "success",
        )
