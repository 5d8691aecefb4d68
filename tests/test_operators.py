"""The plugin's operators, run through FiftyOne's operator machinery."""

import os
import subprocess
import sys

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

import fiftyone_dedup as fod
from fiftyone_dedup.app.operators import PLUGIN_NAME

import helpers

from fiftyone_dedup.app.operators import OPERATORS as OPERATOR_CLASSES

OPERATORS = tuple(cls().config.name for cls in OPERATOR_CLASSES)
assert {"compute_embeddings", "move_duplicates", "restore_duplicates"} <= set(OPERATORS)


def uri(name):
    return f"{PLUGIN_NAME}/{name}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("op-images"))
    made = helpers.make_folder(d, num_textures=6)
    made["bad"] = helpers.write_bad_files(os.path.join(d, "bad"))
    return made


@pytest.fixture
def dataset(folder):
    ds = fo.Dataset()
    paths = folder["originals"] + [c for _, c in folder["planted"]]
    ds.add_samples([fo.Sample(filepath=p) for p in paths + [folder["bad"]["corrupt"]]])
    yield ds
    ds.delete()


def test_plugin_is_discovered_with_all_operators():
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "operators", "list"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for name in OPERATORS:
        assert uri(name) in out.stdout, out.stdout
    for name in OPERATORS:
        assert foo.get_operator(uri(name)) is not None


def test_find_duplicates_immediately(dataset, folder):
    op = foo.get_operator(uri("find_duplicates"))
    summary = op(dataset, threshold=10, run_key="dedup")
    assert summary["num_groups"] == len(folder["planted"])
    assert summary["num_failed"] == 1
    assert len(dataset.match_tags("duplicate")) == len(folder["planted"])
    assert fod.list_runs(dataset) == ["dedup"]


def test_find_duplicates_on_a_view_target(dataset, folder):
    view = dataset.limit(len(folder["originals"]))  # originals only
    op = foo.get_operator(uri("find_duplicates"))
    summary = op(view, threshold=10)
    assert summary["num_samples"] == len(folder["originals"])
    assert summary["num_groups"] == 0


def test_compute_hashes_then_clear(dataset):
    result = foo.get_operator(uri("compute_hashes"))(dataset)
    assert result.error is None
    assert len(dataset.exists("dhash")) == len(dataset) - 1
    assert dataset.exists("dhash_error").values("dhash_error")[0].startswith("cannot")

    foo.get_operator(uri("find_duplicates"))(dataset, run_key="first_run")
    assert "first_run" in fod.list_runs(dataset)
    result = foo.get_operator(uri("clear_duplicates"))(dataset, run_key="first_run")
    assert result.error is None and result.result == {"deleted": "first_run"}
    assert fod.list_runs(dataset) == []
    assert not dataset.has_sample_field("first_run_group")
    assert len(dataset.match_tags("duplicate")) == 0


def test_show_duplicates_returns_the_group_view(dataset, folder):
    fod.find_duplicates(dataset)
    result = foo.execute_operator(
        uri("show_duplicates"), dict(dataset=dataset),
        params=dict(run_key="dedup", role="duplicate"),
    )
    assert result.result == {"num_samples": len(folder["planted"])}
    # one tile per group: a dynamic view grouped by the run's group field
    result = foo.execute_operator(
        uri("show_duplicates"), dict(dataset=dataset), params=dict(run_key="dedup", grouped=True)
    )
    assert result.result == {"num_groups": fod.load_run(dataset).summary["num_groups"]}


def test_find_duplicates_delegated(dataset, folder):
    op = foo.get_operator(uri("find_duplicates"))
    queued = op(dataset, threshold=10, run_key="sched", delegate=True)
    assert queued.error is None
    assert fod.list_runs(dataset) == []  # only queued so far

    dos = DelegatedOperationService()
    done = dos.execute_queued_operations(dataset_name=dataset.name, operator=uri("find_duplicates"))
    assert len(done) == 1
    doc = dos.get(queued.result["id"]) if isinstance(queued.result, dict) else None
    ops = dos.list_operations(dataset_name=dataset.name, operator=uri("find_duplicates"))
    assert [o.run_state for o in ops] == [ExecutionRunState.COMPLETED]
    # progress was reported while it ran
    assert ops[0].status is not None and ops[0].status.progress is not None
    if doc is not None:
        assert doc.run_state == ExecutionRunState.COMPLETED
    assert fod.load_run(dataset, "sched").summary["num_groups"] == len(folder["planted"])
    # the summary is kept on the operation's record (`fiftyone delegated output`)
    assert ops[0].result.result["num_groups"] == len(folder["planted"])
    assert ops[0].result.result["num_failed"] == 1
    assert ops[0].status.label  # the stage last reported


def test_compute_hashes_delegated_keeps_its_report(dataset):
    queued = foo.get_operator(uri("compute_hashes"))(dataset, delegate=True)
    assert queued.error is None
    dos = DelegatedOperationService()
    dos.execute_queued_operations(dataset_name=dataset.name, operator=uri("compute_hashes"))
    (op,) = dos.list_operations(dataset_name=dataset.name, operator=uri("compute_hashes"))
    assert op.run_state == ExecutionRunState.COMPLETED
    assert op.result.result == {
        "field": "dhash", "num_computed": len(dataset), "num_reused": 0, "num_failed": 1,
    }


def test_large_targets_default_to_a_scheduled_run(dataset, monkeypatch):
    from fiftyone.operators.executor import ExecutionContext
    from fiftyone_dedup.app import appui

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {}})
    for name in ("compute_hashes", "find_duplicates"):
        op = foo.get_operator(uri(name))
        options = op.resolve_execution_options(ctx)
        assert options.allow_immediate_execution and options.allow_delegated_execution
        assert not options.default_choice_to_delegated
    monkeypatch.setattr(appui, "LARGE_TARGET", len(dataset) - 1)
    for name in ("compute_hashes", "find_duplicates"):
        options = foo.get_operator(uri(name)).resolve_execution_options(ctx)
        assert options.default_choice_to_delegated
        inputs = foo.get_operator(uri(name)).resolve_input(ctx)
        assert "large_target" in inputs.type.properties


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(threshold=99), "between 0 and 64"),
        (dict(encoder="cnn", threshold=3.0), "between -1 and 1"),
        (dict(run_key="not valid"), "Invalid run key"),
        (dict(field="1bad"), "Invalid field"),
    ],
)
def test_bad_form_values_are_rejected_before_running(dataset, params, message):
    params = {"encoder": "dhash", "threshold": 10, "run_key": "dedup", **params}
    with pytest.raises(Exception) as err:
        foo.execute_operator(uri("find_duplicates"), dict(dataset=dataset), params=params)
    assert message in str(err.value) or any(
        message in str(a) for a in getattr(err.value, "args", ())
    ), str(err.value)
    assert fod.list_runs(dataset) == []
    assert not dataset.has_sample_field("dhash")


def test_empty_target_is_rejected(dataset):
    empty = dataset.limit(0)
    with pytest.raises(Exception, match="no samples"):
        foo.execute_operator(uri("find_duplicates"), dict(view=empty), params={"threshold": 10})


# ------------------------------------------------------------ move / restore


@pytest.fixture
def moving(tmp_path):
    """A folder dataset with two planted copies, duplicates found."""
    from fiftyone_dedup.engine import folders

    root = str(tmp_path / "imgs")
    for i in range(3):
        img = helpers.photo(i).resize((96, 72))
        helpers.save(img, os.path.join(root, f"p{i}.jpg"))
        if i < 2:
            helpers.save(helpers.jpeg(img), os.path.join(root, "sub", f"p{i}_copy.jpg"))
    name = f"op-move-{os.path.basename(str(tmp_path))}"
    ds = folders.load_folders([root], name=name, data_dir=False, annotations=False)[0]
    fod.find_duplicates(ds, threshold=10, num_workers=0)
    yield ds, root, str(tmp_path / "dups")
    for n in (name, name + "-duplicates"):
        if fo.dataset_exists(n):
            fo.load_dataset(n).delete()


def _form(name, dataset, params):
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    prop = foo.get_operator(uri(name)).resolve_input(ctx)
    return prop.type.properties


def test_move_form_shows_the_plan_and_requires_confirmation(moving):
    ds, root, dup = moving
    props = _form("move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": dup})
    assert props["plan"].view.label == f"2 image(s) will move to {dup}; 0 will not"
    plan_text = props["plan_lines"].default
    assert os.path.join(root, "sub", "p0_copy.jpg") in plan_text
    assert os.path.join(dup, "imgs", "sub", "p0_copy.jpg") in plan_text
    assert props["confirm"].invalid
    props = _form(
        "move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": dup, "confirm": True}
    )
    assert not props["confirm"].invalid
    # without confirming, nothing moves
    with pytest.raises(Exception, match="confirm"):
        foo.execute_operator(
            uri("move_duplicates"), dict(dataset=ds),
            params={"run_key": "dedup", "duplicates_dir": dup},
        )
    assert not os.path.exists(dup)
    # a bad folder is flagged in the form
    bad = os.path.join(root, "p0.jpg")
    props = _form("move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": bad})
    assert props["duplicates_dir"].invalid
    assert "not a folder" in props["duplicates_dir"].error_message


def test_move_then_restore_through_the_operators(moving):
    ds, root, dup = moving
    before = sorted(os.listdir(os.path.join(root, "sub")))
    summary = foo.get_operator(uri("move_duplicates"))(ds, dup, on_samples="delete")
    assert summary["state"] == "moved" and summary["num_moved"] == 2
    assert os.listdir(os.path.join(root, "sub")) == [] and len(ds) == 3
    props = _form("restore_duplicates", ds, {"duplicates_dir": dup})
    assert props["plan"].view.label == "2 file(s) will go back"
    moves = foo.get_operator(uri("restore_duplicates"))(ds, dup)
    assert [m["state"] for m in moves] == ["restored"]
    assert sorted(os.listdir(os.path.join(root, "sub"))) == before and len(ds) == 5


def test_move_delegated(moving):
    ds, root, dup = moving
    queued = foo.get_operator(uri("move_duplicates"))(ds, dup, delegate=True)
    assert queued.error is None and not os.path.exists(dup)
    dos = DelegatedOperationService()
    dos.execute_queued_operations(dataset_name=ds.name, operator=uri("move_duplicates"))
    ops = dos.list_operations(dataset_name=ds.name, operator=uri("move_duplicates"))
    assert [o.run_state for o in ops] == [ExecutionRunState.COMPLETED]
    assert len(ds.match_tags("moved")) == 2


def test_move_form_refuses_relative_and_inside_folders(moving):
    ds, root, dup = moving
    props = _form("move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": "dups"})
    assert props["duplicates_dir"].invalid
    assert "Give an absolute folder path" in props["duplicates_dir"].error_message
    props = _form(
        "move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": os.path.join(root, "dups")}
    )
    assert "inside the dataset's folder" in props["duplicates_dir"].error_message
    props = _form("move_duplicates", ds, {"run_key": "dedup", "duplicates_dir": dup})
    assert not props["duplicates_dir"].invalid


def test_cross_form_names_the_other_datasets_runs_it_replaces(moving, dataset):
    ds, _, _ = moving
    params = {"datasets": [ds.name], "encoder": "dhash", "run_key": "dedup"}
    props = _form("find_cross_duplicates", dataset, params)
    assert "others_replaced" in props
    assert f"dataset '{ds.name}' (dedup: dhash at 10" in props["others_replaced"].view.description
    props = _form("find_cross_duplicates", dataset, {**params, "write_reference": False})
    assert "others_replaced" not in props
    props = _form("find_cross_duplicates", dataset, {**params, "run_key": "fresh"})
    assert "others_replaced" not in props


def test_review_panel_histogram_bars_cover_the_recorded_scores(dataset):
    from fiftyone_dedup.app import review_panel

    fod.find_duplicates(dataset, encoder="dhash", threshold=10, num_workers=0)
    hist = fod.load_run(dataset).histogram
    scores = [d["score"] for g in fod.review_groups(dataset) for d in g["duplicates"]]
    assert scores
    # every recorded score lies in exactly one bar, named by its bits
    for s in scores:
        bars = [
            i for i in range(len(hist["edges"]) - 1)
            if review_panel._in_bin(s, *review_panel.bin_of(hist, i), last=False)
        ]
        assert len(bars) == 1, (s, bars)
        lo, hi = review_panel.bin_of(hist, bars[0])
        assert review_panel.bin_text(hist["metric"], lo, hi) == f"{int(s)} bits"
    assert review_panel.bin_text("cosine", 0.95, 0.955) == "0.95 to 0.955"
    with pytest.raises(ValueError, match="No histogram bar 99"):
        review_panel.bin_of(hist, 99)


def _panel_event(dataset, method, state, **params):
    """The review panel's response to an App event: the operations it sends."""
    from fiftyone.operators.executor import ExecutionContext, Executor

    executor = Executor()
    ctx = ExecutionContext(
        request_params={"dataset_name": dataset.name, "params": dict(
            params, panel_id="panel-1", panel_state=state, __method__=method,
        )},
        executor=executor,
    )
    foo.get_operator(uri("dedup_review")).execute(ctx)
    return [(r["operator_uri"].split("/")[-1], r["params"]) for r in executor.to_json()["requests"]]


def _find_view(output, component):
    """The view of the rendered panel's property drawn by ``component``."""
    if isinstance(output, dict):
        if output.get("component") == component:
            return output
        items = output.values()
    elif isinstance(output, list):
        items = output
    else:
        return None
    for item in items:
        found = _find_view(item, component)
        if found is not None:
            return found
    return None


def test_review_panel_ignores_inputs_reporting_the_value_they_hold(moving):
    """The App reports an input's value when it draws it; rendering for that
    event, from its older state, could undo a step on screen."""
    ds = moving[0]
    state = {"run_key": "dedup", "index": 1}
    assert _panel_event(ds, "on_threshold", state, value=10) == []
    assert _panel_event(ds, "on_threshold", dict(state, threshold=8), value=8) == []
    assert _panel_event(ds, "on_change_run", state, value="dedup") == []
    # a real change is kept and drawn
    ops = _panel_event(ds, "on_threshold", state, value=8)
    assert ("patch_panel_state", {"panel_id": "panel-1", "state": {"threshold": 8}}) in ops
    assert ops[-1][0] == "show_panel_output"
    # a step draws the group it steps to
    ops = _panel_event(ds, "next_group", {"run_key": "dedup", "index": 0})
    assert ops[0] == ("patch_panel_state", {"panel_id": "panel-1", "state": {"index": 1}})
    assert "Group 2 of 2" in str(ops[-1][1])
    # keys and buttons step from the group shown when they were used (their
    # params), and decide on it, whatever the state became meanwhile
    keys = _find_view(ops[-1][1]["output"], "DedupReviewKeys")
    assert keys["params"] == {"index": 1, "group": fod.review_groups(ds)[1]["group"]}
    ops = _panel_event(ds, "next_group", {"run_key": "dedup", "index": 0}, index=1)
    assert ops[0] == ("patch_panel_state", {"panel_id": "panel-1", "state": {"index": 0}})
    shown = fod.review_groups(ds)[1]
    ops = _panel_event(ds, "key_not_duplicate", {"run_key": "dedup", "index": 0},
                       **keys["params"])
    name = os.path.basename(shown["duplicates"][0]["filepath"])
    assert any(n == "notify" and p["message"] == f"{name}: not duplicate" for n, p in ops)
    assert fod.review_groups(ds)[1]["duplicates"][0]["role"] == "not_duplicate"
    assert fod.review_groups(ds)[0]["duplicates"][0]["role"] == "duplicate"
