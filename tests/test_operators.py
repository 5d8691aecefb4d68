"""The plugin's operators, run through FiftyOne's operator machinery."""

import json
import os
import subprocess
import sys

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

import fiftyone_dedup as fod
from fiftyone_dedup.operators import PLUGIN_NAME

import helpers

OPERATORS = ("compute_hashes", "compute_embeddings", "find_duplicates", "show_duplicates", "clear_duplicates")


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
        uri("show_duplicates"), dict(dataset=dataset), params=dict(run_key="dedup", role="duplicate")
    )
    assert result.result == {"num_samples": len(folder["planted"])}


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
