"""The plugin used from the real FiftyOne App, in headless Chromium.

One App server (``fiftyone app launch``) and one browser serve the module;
each test opens its own dataset of real images in a fresh browser context,
drives the operator browser as a curator would (parameters typed into the
forms), then checks the dataset through the SDK and the files on disk.
Screenshots of each step go to ``test-artifacts/app/<test>/``; the results
view is also saved as ``test-artifacts/app/app-duplicates.png`` (the
README's screenshot, ``docs/app-duplicates.png``).
"""

import os
import shutil

import pytest

import fiftyone as fo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

import fiftyone_dedup as fod
from fiftyone_dedup.app.operators import PLUGIN_NAME

import appbrowser
import helpers

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    pw, browser = appbrowser.start_browser()
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real photos with planted near-duplicates, and one corrupt file."""
    d = str(tmp_path_factory.mktemp("app-images"))
    made = helpers.make_folder(d, num_textures=4)
    made["corrupt"] = helpers.write_bad_files(os.path.join(d, "bad"))["corrupt"]
    made["dir"] = d
    return made


@pytest.fixture(scope="module")
def app_server(browser, folder):
    """The App, serving a one-image "lobby" dataset first; ready once its
    session shows that dataset in a browser (see ``wait_for_session``)."""
    lobby = fo.Dataset("app-tests-lobby", overwrite=True)
    lobby.persistent = True
    lobby.add_sample(fo.Sample(filepath=folder["originals"][0]))
    server = appbrowser.AppServer(
        lobby.name, os.path.join(appbrowser.ARTIFACTS, "app-server.log")
    )
    try:
        appbrowser.wait_for_session(browser, server, lobby.name)
        yield server
    finally:
        server.stop()
        lobby.delete()


@pytest.fixture
def make_dataset(request):
    """Makes persistent datasets (the App server is another process)."""
    made = []

    def make(paths, name=None):
        name = name or f"app-{request.node.name}-{len(made)}"
        ds = fo.Dataset(name, overwrite=True)
        ds.persistent = True
        ds.add_samples([fo.Sample(filepath=p) for p in paths])
        made.append(ds)
        return ds

    yield make
    for ds in made:
        if fo.dataset_exists(ds.name):
            ds.delete()


@pytest.fixture
def app(browser, app_server, make_dataset, request):
    """A fresh browser context on the App; a last screenshot at teardown
    (before the test's datasets are deleted)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    artifacts = os.path.join(appbrowser.ARTIFACTS, request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    page = appbrowser.AppPage(context, app_server, artifacts)
    yield page
    page.screenshot("last")
    if page.console_errors:
        with open(os.path.join(artifacts, "console-errors.txt"), "w") as f:
            f.write("\n".join(page.console_errors))
    context.close()


def _all_paths(folder):
    return folder["originals"] + [c for _, c in folder["planted"]] + [folder["corrupt"]]


def _files_state(directory):
    state = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            state[path] = (st.st_size, st.st_mtime_ns)
    return state


def _queued_ops(dataset):
    return DelegatedOperationService().list_operations(
        dataset_name=dataset.name, operator=f"{PLUGIN_NAME}/find_duplicates"
    )


def test_compute_then_find_duplicates_from_the_operator_browser(
    app, folder, make_dataset
):
    ds = make_dataset(_all_paths(folder), name="app-test-photos")
    n = len(ds)
    planted = folder["planted"]
    files_before = _files_state(folder["dir"])

    app.open_dataset(ds.name)
    app.wait_for_grid(n)
    app.screenshot("dataset")

    # compute hashes into a field named in the form
    form = app.open_operator("compute_hashes")
    form.has_text(f"{n} sample(s) will be hashed")
    form.select("Encoder", "DHash")
    form.fill("Encodings field", "hash64")
    form.wait_runnable()
    app.screenshot("compute-hashes-form")
    form.execute()
    dialog = app.result_dialog("Hashes computed")
    app.screenshot("compute-hashes-result")
    assert dialog.value("Field") == "hash64"
    assert dialog.value("Files read now") == str(n)
    assert dialog.value("Unreadable images") == "1"
    assert os.path.basename(folder["corrupt"]) in dialog.text()
    app.wait_for_notification(f"{n} image(s) read, 0 reused, 1 unreadable")
    dialog.close()

    ds.reload()
    assert len(ds.exists("hash64")) == n - 1
    assert ds.exists("hash64_error").values("filepath") == [folder["corrupt"]]

    # find duplicates with a threshold and run key typed into the form
    form = app.open_operator("find_duplicates")
    form.select("Encoder", "DHash")
    form.fill("Encodings field", "hash64")
    form.has_text(f"{n - 1} of {n} sample(s) already hashed in 'hash64'")
    form.fill("Threshold (bits)", 8)
    form.fill("Run key", "app_run")
    form.wait_runnable()
    app.screenshot("find-duplicates-form")
    form.execute()
    dialog = app.result_dialog("Duplicates found (run 'app_run')")
    app.screenshot("find-duplicates-result")
    assert dialog.value("Groups") == str(len(planted))
    assert dialog.value("Duplicates (tagged)") == str(len(planted))
    assert dialog.value("Samples searched") == str(n)
    assert dialog.value("Unreadable images (skipped)") == "1"
    assert "The App now shows the groups" in dialog.text()
    assert os.path.basename(folder["corrupt"]) in dialog.text()
    dialog.close()

    # the App's view is now the groups: each kept photo beside its copy
    app.wait_for_notification(
        f"{len(planted)} duplicate(s) in {len(planted)} group(s) among {n} sample(s)"
    )
    app.wait_for_grid(2 * len(planted))
    shot = app.screenshot("duplicates-view")
    shutil.copyfile(shot, os.path.join(appbrowser.ARTIFACTS, "app-duplicates.png"))

    # the SDK sees the run, its fields and tags
    ds.reload()
    assert fod.list_runs(ds) == ["app_run"]
    info = ds.get_run_info("app_run")
    assert info.config.threshold == 8 and info.config.field == "hash64"
    assert fod.load_run(ds, "app_run").summary["num_groups"] == len(planted)
    ids = dict(zip(*ds.values(["filepath", "id"])))
    kept_of = dict(zip(*ds.values(["filepath", "app_run_kept_id"])))
    for original, copy in planted:
        assert kept_of[copy] == ids[original], copy
    assert sorted(ds.match_tags("duplicate").values("filepath")) == sorted(
        c for _, c in planted
    )

    # finding duplicates leaves the files alone
    assert _files_state(folder["dir"]) == files_before


def test_threshold_out_of_range_is_rejected_in_the_form(app, folder, make_dataset):
    ds = make_dataset(_all_paths(folder))
    planted = folder["planted"]
    app.open_dataset(ds.name)

    form = app.open_operator("find_duplicates")
    form.has_text("0.82-0.9 is typical")  # CNN, as on the command line
    form.select("Encoder", "DHash")
    form.has_text("~10 is typical")
    form.wait_runnable()
    form.fill("Threshold (bits)", 99)
    form.has_text("Threshold must be between 0 and 64 bits")
    form.has_text("got 99")
    form.wait_runnable(False)
    app.screenshot("threshold-rejected")

    # the meaning and range follow the chosen encoder
    form.select("Encoder", "CNN")
    form.has_text("0.82-0.9 is typical")
    form.fill("Minimum similarity", 3)
    form.has_text("between -1 and 1 for embeddings (0.82-0.9 is typical), got 3")
    form.wait_runnable(False)
    app.screenshot("cnn-threshold-rejected")

    ds.reload()
    assert fod.list_runs(ds) == [] and not ds.has_sample_field("dhash")

    # a corrected value runs; the result dialog offers the groups
    form.select("Encoder", "DHash")
    form.fill("Threshold (bits)", 12)
    form.wait_runnable()
    assert "Threshold must be between" not in form.text()
    form.check("Show the groups when done", False)
    form.execute()
    dialog = app.result_dialog("Duplicates found (run 'dedup')")
    assert dialog.value("Groups") == str(len(planted))
    assert "Review them with Show the groups below" in dialog.text()
    app.screenshot("result-with-button")
    dialog.click("Show the groups")
    app.wait_for_notification(f"Showing {2 * len(planted)} sample(s) of run 'dedup'")
    dialog.close()
    app.wait_for_grid(2 * len(planted))

    ds.reload()
    assert fod.list_runs(ds) == ["dedup"]
    assert ds.get_run_info("dedup").config.threshold == 12


def test_scheduled_run_is_finished_by_a_delegated_worker(
    app, folder, make_dataset
):
    ds = make_dataset(_all_paths(folder))
    planted = folder["planted"]
    app.open_dataset(ds.name)

    form = app.open_operator("find_duplicates")
    form.select("Encoder", "DHash")
    form.fill("Run key", "scheduled")
    form.fill("Threshold (bits)", 10)
    form.schedule()
    app.wait_for_notification("Operation successfully scheduled")
    app.screenshot("scheduled")

    ops = _queued_ops(ds)
    assert [op.run_state for op in ops] == [ExecutionRunState.QUEUED]
    assert ops[0].context.request_params["params"]["run_key"] == "scheduled"
    assert fod.list_runs(ds) == []  # nothing ran yet

    worker = appbrowser.DelegatedWorker(
        os.path.join(app.artifacts, "delegated-worker.log")
    )
    try:
        doc = worker.wait_for(ops[0].id)
    finally:
        code = worker.stop()
    assert doc.run_state == ExecutionRunState.COMPLETED, (
        doc.result.error_message if doc.result else "no result recorded"
    )
    assert code is not None
    # progress and a stage label were recorded while it ran
    assert doc.status.progress == 1.0 and doc.status.label
    assert doc.result.result["num_groups"] == len(planted)

    ds.reload()
    assert fod.list_runs(ds) == ["scheduled"]
    assert len(ds.match_tags("duplicate")) == len(planted)

    # review the scheduled run's duplicates in the App
    app.page.reload()
    app.open_dataset(ds.name)
    form = app.open_operator("show_duplicates")
    form.choose("Duplicates only")
    form.execute()
    app.wait_for_notification(f"Showing {len(planted)} sample(s) of run 'scheduled'")
    app.wait_for_grid(len(planted))
    app.screenshot("scheduled-duplicates-view")

    # the current view is now offered as a target, the whole dataset first
    form = app.open_operator("compute_hashes")
    form.has_text(f"{len(ds)} sample(s) will be hashed")
    form.choose("Current view")
    form.has_text(f"{len(planted)} sample(s) will be hashed")
    form.cancel()

    # clear the run from the App
    form = app.open_operator("clear_duplicates")
    form.has_text("Deletes fields scheduled_group")
    app.screenshot("clear-form")
    form.execute()
    app.page.wait_for_function(
        "() => !document.querySelector('[data-cy=\"operators-prompt-modal\"]')"
    )
    ds.reload()
    assert fod.list_runs(ds) == []
    assert not ds.has_sample_field("scheduled_group")
    assert len(ds.match_tags("duplicate")) == 0


@pytest.fixture(scope="module")
def slow_images(tmp_path_factory):
    """Large PNGs (decoded fully, so hashing takes seconds): one file,
    hard-linked under many names."""
    d = str(tmp_path_factory.mktemp("app-slow"))
    src = helpers.save(helpers.texture(42, size=(2000, 1500)), os.path.join(d, "big.png"))
    paths = [src]
    for i in range(1, 40):
        paths.append(os.path.join(d, f"big_{i:02d}.png"))
        os.link(src, paths[-1])
    return paths


def test_selected_samples_target_and_progress_while_hashing(
    app, slow_images, make_dataset
):
    ds = make_dataset(slow_images)
    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))

    # hash only the selected samples, with a hash chosen in the dropdown
    app.select_samples(2)
    form = app.open_operator("compute_hashes")
    form.choose("Selected samples")
    form.has_text("2 sample(s) will be hashed")
    form.select("Encoder", "AHash")
    form.wait_runnable()
    app.screenshot("selected-samples-form")
    form.execute()
    dialog = app.result_dialog("Hashes computed")
    assert dialog.value("Field") == "ahash"
    assert dialog.value("Files read now") == "2"
    dialog.close()
    ds.reload()
    assert len(ds.exists("ahash")) == 2

    # the whole dataset: progress shows, with the stage, while it runs
    form = app.open_operator("compute_hashes")
    form.choose("Dataset")
    form.has_text(f"{len(ds)} sample(s) will be hashed")
    app.clear_progress()
    form.execute()
    app.wait_for_text("Hashing images")
    app.screenshot("progress")
    dialog = app.result_dialog("Hashes computed")
    assert dialog.value("Files read now") == str(len(ds))
    seen = app.progress_seen()
    during = [s for s in seen if "Hashing images" in s["text"] and s["value"] < 100]
    assert len({s["value"] for s in during}) >= 2, seen
    values = [s["value"] for s in during]
    assert values == sorted(values), seen
    ds.reload()
    assert len(ds.exists("dhash")) == len(ds)


def _checksums(directory):
    """{relative path: sha256} of every file under a folder."""
    import hashlib

    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_move_shows_its_plan_asks_to_confirm_and_undoes_in_one_click(
    app, make_dataset, tmp_path
):
    # a private folder: this test moves files
    images = str(tmp_path / "images")
    made = helpers.make_folder(images, num_textures=2)
    planted = made["planted"]
    copies = sorted(c for _, c in planted)
    ds = make_dataset(made["originals"] + copies)
    fod.find_duplicates(ds, threshold=10)
    assert sorted(ds.match_tags("duplicate").values("filepath")) == copies
    before = _checksums(images)
    dup = str(tmp_path / "dups")

    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))
    form = app.open_operator("move_duplicates")
    form.fill("Duplicates folder", dup)
    # the plan first, and nothing runs until it is confirmed
    form.has_text(f"{len(copies)} image(s) will move to {dup}; 0 will not")
    form.has_text(os.path.basename(copies[0]))
    form.has_text("Review the plan above and confirm")
    form.wait_runnable(False)
    app.screenshot("move-plan")
    assert _checksums(images) == before and not os.path.exists(dup)

    form.check("Move these files")
    form.wait_runnable()
    form.execute()
    dialog = app.result_dialog("Duplicates moved")
    app.screenshot("move-result")
    assert dialog.value("Images moved") == str(len(copies))
    assert dialog.value("Duplicates not moved") == "0"

    # on disk: each copy left its folder, and its bytes are in the
    # duplicates folder (with the manifest); the originals did not move
    after = _checksums(images)
    moved = _checksums(dup)
    for path in copies:
        rel = os.path.relpath(path, images)
        assert rel not in after
        assert list(moved.values()).count(before[rel]) == 1, rel
    assert {r: h for r, h in before.items() if os.path.join(images, r) not in copies} == after
    assert any(name.startswith("manifest-") for name in moved)
    # in the dataset: the moved samples point at their new files, tagged
    ds.reload()
    tagged = ds.match_tags("moved")
    assert len(tagged) == len(copies)
    assert all(p.startswith(dup + os.sep) and os.path.isfile(p) for p in tagged.values("filepath"))

    # undo is one click in the result dialog
    dialog.click("Undo this move")
    restored = app.result_dialog("Duplicates restored")
    app.screenshot("restore-result")
    assert restored.value("Images put back") == str(len(copies))
    assert _checksums(images) == before
    # no copy is left behind in the duplicates folder (only its records)
    copy_sums = {before[os.path.relpath(p, images)] for p in copies}
    assert not copy_sums & set(_checksums(dup).values())
    ds.reload()
    assert sorted(ds.match_tags("duplicate").values("filepath")) == copies
    assert len(ds.match_tags("moved")) == 0


def test_cross_dataset_search_with_the_other_dataset_picked_in_the_form(
    app, folder, make_dataset, tmp_path
):
    reference = make_dataset(folder["originals"], name="app-cross-reference")
    copies = sorted(c for _, c in folder["planted"])
    # the query: the planted copies, and two images the reference lacks
    new = [
        helpers.save(helpers.texture(7000 + s), str(tmp_path / f"new_{s}.png"))
        for s in range(2)
    ]
    query = make_dataset(copies + new, name="app-cross-query")
    files_before = _files_state(folder["dir"])

    app.open_dataset(query.name)
    app.wait_for_grid(len(query))
    form = app.open_operator("find_cross_duplicates")
    form.has_text("Against them (query vs reference)")
    form.pick("Other datasets", reference.name)
    form.select("Encoder", "DHash")
    form.fill("Threshold (bits)", 10)
    form.wait_runnable()
    app.screenshot("cross-form")
    form.execute()
    dialog = app.result_dialog("Cross-dataset duplicates found (run 'dedup')")
    app.screenshot("cross-result")
    assert dialog.value("Duplicates of a sample in another dataset") == str(len(copies))
    assert dialog.value("Samples searched") == str(len(query) + len(reference))
    assert f"{reference.name}: {len(reference)} sample(s), 0 duplicate(s)" in dialog.text()
    dialog.close()
    # the App shows the query's hits
    app.wait_for_grid(len(copies))

    # each copy points at its original in the reference dataset
    query.reload()
    ref_ids = dict(zip(*reference.values(["filepath", "id"])))
    rows = dict(zip(query.values("filepath"), zip(*query.values(
        ["dedup_kept_dataset", "dedup_kept_id", "dedup_kept_filepath"]
    ))))
    for original, copy in folder["planted"]:
        assert rows[copy] == (reference.name, ref_ids[original], original), copy
    for path in new:
        assert rows[path] == (None, None, None), path
    # the reference is never searched against itself: none of it is marked
    reference.reload()
    assert len(reference.match_tags("duplicate")) == 0
    assert _files_state(folder["dir"]) == files_before
