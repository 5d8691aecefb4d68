"""Reviewing duplicates in the real App (headless Chromium): errors raised
while an operator runs reach the screen, forms refuse what would surprise,
and the review panel's decisions change what the move does.

Uses the App server, browser and dataset fixtures of
``test_app_browser.py``. The panel's screenshot is saved as
``test-artifacts/app/app-review-panel.png`` (the README's
``docs/app-review-panel.png``).
"""

import os
import re
import shutil

import pytest

import fiftyone_dedup as fod
from fiftyone_dedup.moves import locks
from fiftyone_dedup.algorithms import models

import appbrowser
import helpers
from test_app_browser import app, app_server, browser, folder, make_dataset  # noqa: F401

pytestmark = pytest.mark.browser


def _pairs_folder(directory, n=3):
    """``n`` photos, each with a re-encoded copy in ``copies/``."""
    pairs = []
    for i in range(n):
        img = helpers.photo(i).resize((160, 120))
        original = helpers.save(img, os.path.join(directory, f"p{i}.png"))
        copy = helpers.save(helpers.jpeg(img), os.path.join(directory, "copies", f"p{i}_copy.jpg"))
        pairs.append((original, copy))
    return pairs


def test_errors_while_running_are_shown_and_forms_check_first(app, make_dataset, tmp_path):
    pairs = _pairs_folder(str(tmp_path / "imgs"), n=2)
    ds = make_dataset([p for pair in pairs for p in pair])
    fod.find_duplicates(ds, encoder="dhash", threshold=10, num_workers=0)
    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))

    # CNN with a model whose weights cannot be downloaded here: the form
    # warns, and the run's error reaches the screen with Python's message
    if models.missing_weights("mobilenet_v3_small") is None:
        pytest.skip("mobilenet_v3_small's weights are on this machine")
    with pytest.raises(ValueError) as raised:
        fod.find_duplicates(ds, encoder="cnn", model="mobilenet_v3_small", run_key="cnn")
    message = str(raised.value)
    form = app.open_operator("find_duplicates")
    form.has_text("Minimum similarity")  # CNN is the default
    form.fill("Model", "mobilenet_v3_small")
    form.fill("Run key", "cnn")
    form.has_text("Needs a download")
    app.screenshot("offline-model-warning")
    form.execute()
    dialog = app.result_dialog("Finding duplicates failed")
    app.screenshot("offline-model-error")
    assert message[:80] in " ".join(dialog.text().split()), dialog.text()
    app.wait_for_notification("Finding duplicates failed: " + message[:40])
    dialog.close()

    # a folder that cannot be created, a relative one, one inside the
    # dataset's folder: refused in the form, nothing runs
    blocker = str(tmp_path / "a-file")
    open(blocker, "w").close()
    bad = os.path.join(blocker, "dups")
    with pytest.raises(ValueError) as raised:
        fod.move_duplicates(ds, bad)
    form = app.open_operator("move_duplicates")
    form.fill("Duplicates folder", bad)
    form.has_text(str(raised.value))
    form.wait_runnable(False)
    app.screenshot("uncreatable-folder")
    form.fill("Duplicates folder", "dups")
    form.has_text("Give an absolute folder path")
    form.wait_runnable(False)
    app.screenshot("relative-folder")
    form.fill("Duplicates folder", str(tmp_path / "imgs" / "dups"))
    form.has_text("is inside the dataset's folder")
    form.wait_runnable(False)

    # an error the form cannot foresee (another move holds the folder)
    dup = str(tmp_path / "dups")
    os.makedirs(os.path.join(dup, ".fiftyone_dedup"), exist_ok=True)
    with locks.hold([locks.duplicates_dir_lock(dup)]):
        with pytest.raises(locks.LockError) as raised:
            fod.move_duplicates(ds, dup)
        form.fill("Duplicates folder", dup)
        form.has_text("2 image(s) will move")
        form.check("Move these files")
        form.execute()
        dialog = app.result_dialog("Moving duplicates failed")
        app.screenshot("move-error")
        assert str(raised.value) in " ".join(dialog.text().split())
        app.wait_for_notification("Moving duplicates failed: Another fiftyone-dedup move")
    assert all(os.path.isfile(p) for pair in pairs for p in pair)


def test_cross_search_warns_before_replacing_another_datasets_run(
    app, folder, make_dataset  # noqa: F811
):
    reference = make_dataset(folder["originals"], name="app-review-reference")
    query = make_dataset([c for _, c in folder["planted"]], name="app-review-query")
    fod.find_duplicates(reference, encoder="dhash", threshold=10, num_workers=0)
    before = fod.load_run(reference).summary
    app.open_dataset(query.name)
    app.wait_for_grid(len(query))

    form = app.open_operator("find_cross_duplicates")
    form.pick("Other datasets", reference.name)
    form.select("Encoder", "DHash")
    form.has_text("Replaces the run 'dedup' in 1 other dataset(s)")
    form.has_text(f"dataset '{reference.name}' (dedup: dhash at 10")
    app.screenshot("replace-warning")
    # keeping the other dataset's run: the warning goes
    form.check("Record the run in the other datasets too", False)
    form.wait_runnable()
    app.page.wait_for_function(
        "() => !document.querySelector('[data-cy=\"operators-prompt-modal\"]')"
        ".innerText.includes('Replaces the run')"
    )
    form.execute()
    app.result_dialog("Cross-dataset duplicates found").close()
    reference.reload()
    assert fod.load_run(reference).summary == before


def _open_panel(app):
    """Opens the review panel (the App reopens it by itself after a reload)."""
    try:
        app.wait_for_text("Previous group", timeout=10_000)
    except Exception:  # noqa: BLE001 - not open yet
        app.page.locator('[data-cy="new-panel-btn"]').first.click()
        app.page.locator('[data-cy="new-panel-option-dedup_review"]').click()
    app.wait_for_text("Group 1 of")
    # the images load from the App's media route
    app.page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('img[src^=\"/media\"]')];"
        " return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
    )


def test_review_panel_decisions_drive_the_move(app, make_dataset, tmp_path):
    images = str(tmp_path / "imgs")
    pairs = _pairs_folder(images, n=3)
    ds = make_dataset([p for pair in pairs for p in pair])
    fod.find_duplicates(ds, encoder="dhash", threshold=10, num_workers=0)
    groups = fod.review_groups(ds)
    assert len(groups) == 3
    copy_of = {g["duplicates"][0]["filepath"]: i for i, g in enumerate(groups)}
    dup = str(tmp_path / "dups")

    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))
    _open_panel(app)
    app.screenshot("panel")

    def go_to(index):
        n = len(groups)
        shown = app.page.get_by_text(re.compile(rf"Group \d+ of {n}")).first.inner_text()
        at = int(re.search(r"Group (\d+) of", shown).group(1))
        while at != index + 1:
            app.page.get_by_role("button", name="Next group").click()
            at = at % n + 1
            app.wait_for_text(f"Group {at} of {n}")

    def click(label):
        app.page.get_by_role("button", name=label).first.click()

    # one duplicate is not a duplicate; another group keeps its copy
    go_to(copy_of[pairs[0][1]])
    click("Not a duplicate")
    app.wait_for_notification("not duplicate")
    app.wait_for_text("not a duplicate: never moves")
    go_to(copy_of[pairs[1][1]])
    click("Keep this one instead")
    app.wait_for_notification("keep")
    app.wait_for_text(os.path.basename(pairs[1][0]))  # now the duplicate
    shot = app.screenshot("panel-decided")
    # the README's screenshot (docs/app-review-panel.png)
    shutil.copyfile(shot, os.path.join(appbrowser.ARTIFACTS, "app-review-panel.png"))
    ds.reload()
    assert ds[pairs[0][1]]["dedup_role"] == "not_duplicate"
    assert ds[pairs[1][0]]["dedup_role"] == "duplicate"

    # decisions survive a reload of the App
    app.page.reload()
    app.open_dataset(ds.name)
    _open_panel(app)
    go_to(copy_of[pairs[0][1]])
    app.wait_for_text("not a duplicate: never moves")

    # the move honours them
    app.page.get_by_role("button", name="Move duplicates...").click()
    modal = app.page.locator('[data-cy="operators-prompt-modal"]')
    modal.wait_for()
    form = appbrowser.OperatorForm(app, modal)
    form.fill("Duplicates folder", dup)
    form.has_text(f"2 image(s) will move to {dup}; 0 will not")
    form.check("Move these files")
    form.execute()
    dialog = app.result_dialog("Duplicates moved")
    assert dialog.value("Images moved") == "2"
    assert os.path.isfile(pairs[0][1])  # not a duplicate: stays
    assert not os.path.exists(pairs[1][0]) and os.path.isfile(pairs[1][1])
    assert not os.path.exists(pairs[2][1]) and os.path.isfile(pairs[2][0])


def _graded_run(make_dataset, images):
    """A DHash run on 3 photos and their copies at different distances:
    re-encoded (0 bits), brightened (2-3)."""
    paths = []
    stronger = lambda img: helpers.brighter(img, 1.6)  # noqa: E731
    for i, edit in enumerate((helpers.jpeg, stronger, stronger)):
        img = helpers.photo(i).resize((160, 120))
        paths.append(helpers.save(img, os.path.join(images, f"p{i}.png")))
        paths.append(helpers.save(edit(img), os.path.join(images, "copies", f"p{i}_copy.png")))
    ds = make_dataset(paths)
    fod.find_duplicates(ds, encoder="dhash", threshold=10, num_workers=0)
    return ds


def test_panel_threshold_slider_previews_then_applies(app, make_dataset, tmp_path):
    ds = _graded_run(make_dataset, str(tmp_path / "imgs"))
    scores = [d["score"] for g in fod.review_groups(ds) for d in g["duplicates"]]
    assert len(scores) == 3
    left = sum(1 for s in scores if s <= 0)
    assert 0 < left < 3, scores

    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))
    _open_panel(app)
    app.wait_for_text("At 10: 3 duplicate(s) in 3 group(s), 0 fewer")
    # the panel's slider (the grid has sliders of its own)
    slider = app.page.locator(
        "xpath=//*[contains(text(), 'Stricter than the run')]/following::input[@type='range'][1]"
    )
    slider.focus()
    slider.press("Home")
    app.wait_for_text(f"At 0: {left} duplicate(s) in {left} group(s), {3 - left} fewer")
    app.screenshot("slider-preview")
    ds.reload()
    assert len(ds.match_tags("duplicate")) == 3  # a preview changes nothing
    app.page.get_by_role("button", name="Apply threshold").click()
    app.wait_for_notification("Threshold 0 applied")
    ds.reload()
    assert len(ds.match_tags("duplicate")) == left


def test_panel_keys_step_and_decide_and_histogram_bars_show_their_pairs(
    app, make_dataset, tmp_path
):
    ds = _graded_run(make_dataset, str(tmp_path / "imgs"))
    groups = fod.review_groups(ds)
    assert len(groups) == 3
    at_zero = [i for i, g in enumerate(groups) if g["duplicates"][0]["score"] == 0]
    assert 0 < len(at_zero) < 3, [g["duplicates"][0]["score"] for g in groups]

    app.open_dataset(ds.name)
    app.wait_for_grid(len(ds))
    _open_panel(app)
    app.wait_for_text("Keys: j")
    # as a person would: click the panel, so no input field (the Run
    # picker) holds the focus; keys typed into a field are left to it
    app.page.get_by_text("Keys: j").first.click()
    keys = app.page.keyboard
    # j / arrow right: next; k / arrow left: previous (wrapping)
    keys.press("j")
    app.wait_for_text("Group 2 of 3")
    keys.press("ArrowRight")
    app.wait_for_text("Group 3 of 3")
    keys.press("ArrowLeft")
    app.wait_for_text("Group 2 of 3")
    keys.press("k")
    app.wait_for_text("Group 1 of 3")
    keys.press("k")
    app.wait_for_text("Group 3 of 3")
    # n: the shown group's duplicate is not a duplicate
    first = groups[2]["duplicates"][0]
    keys.press("n")
    app.wait_for_notification(os.path.basename(first["filepath"]) + ": not duplicate")
    app.wait_for_text("not a duplicate: never moves")
    ds.reload()
    assert ds[first["filepath"]]["dedup_role"] == "not_duplicate"
    # a: accept the group again
    keys.press("a")
    app.wait_for_notification(f"Group {groups[2]['group']}: accepted")
    ds.reload()
    assert ds[first["filepath"]]["dedup_role"] == "duplicate"

    # the histogram's bar at 0 bits: the grid shows those pairs' groups and
    # the panel steps to the first of them
    bar = app.page.locator(".js-plotly-plot .trace.bars").first.locator(".point").first
    # Plotly's drag layer lies over the bars and takes the click at their place
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    app.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    app.wait_for_text(f"Bar at 0 bits: {len(at_zero)} grouped pair(s)")
    app.wait_for_notification(f"{len(at_zero)} pair(s) at 0 bits")
    app.wait_for_grid(2 * len(at_zero))
    app.wait_for_text(f"Group {at_zero[0] + 1} of 3")
    shot = app.screenshot("panel-histogram")
    shutil.copyfile(shot, os.path.join(appbrowser.ARTIFACTS, "app-review-histogram.png"))
