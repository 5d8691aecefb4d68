"""The CNN encoder on a real database, through the engine, the operators and
the command line, with the real pretrained default model."""

import json
import os
import time

import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone import ViewField as F

import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.app.operators import PLUGIN_NAME

import helpers

CNN_DEFAULT = encoders.ENCODERS["cnn"].default_threshold


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real photos: the colour ones each with one planted near-duplicate
    (resized, cropped, re-encoded, brighter, tinted), the greyscale ones as
    distinct distractors, and unreadable files."""
    d = str(tmp_path_factory.mktemp("cnn-images"))
    made = helpers.make_folder(
        d, num_textures=0, edits=tuple(helpers.NEAR_DUPLICATE_EDITS)
    )
    for i in range(helpers.num_photos(), helpers.num_photos(grey=True)):
        path = os.path.join(d, f"grey_{i:02d}.png")
        made["originals"].append(helpers.save(helpers.photo(i, grey=True), path))
    made["bad"] = helpers.write_bad_files(os.path.join(d, "bad"))
    made["dir"] = d
    return made


def _dataset(paths):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    return ds


def _good_paths(folder):
    return sorted(folder["originals"]) + sorted(c for _, c in folder["planted"])


def _found_pairs(results):
    pairs = set()
    for g in results.groups():
        for d in g["duplicates"]:
            pairs.add(frozenset((g["keep"]["filepath"], d["filepath"])))
    return pairs


# ------------------------------------------------------------------ engine


def test_compute_embeddings_stores_reuses_and_recomputes(folder):
    from imagededup.utils.models import CustomModel

    ds = _dataset(_good_paths(folder) + sorted(folder["bad"].values()))
    try:
        report = fod.compute_embeddings(ds)
        n = len(ds)
        assert report.field == "cnn_embedding"
        assert report.num_computed == n and report.num_reused == 0
        assert {f["filepath"] for f in report.failures} == set(folder["bad"].values())
        assert isinstance(ds.get_field("cnn_embedding"), fo.VectorField)
        vectors = ds.exists("cnn_embedding").values("cnn_embedding")
        assert len(vectors) == n - len(folder["bad"])
        assert all(v.shape == (1280,) and v.dtype == np.float32 for v in vectors)
        errors = dict(zip(*ds.values(["filepath", "cnn_embedding_error"])))
        assert errors[folder["bad"]["empty"]] == "empty file (0 bytes)"
        stamps = ds.exists("cnn_embedding").values("cnn_embedding_stamp")
        assert all(s.startswith("cnn:efficientnet-lite0:") for s in stamps)

        again = fod.compute_embeddings(ds)
        assert again.num_computed == 0 and again.num_reused == n
        assert again.num_failed == len(folder["bad"])

        # a changed file is embedded again, the others reused
        target = folder["originals"][-1]
        before = ds.one(F("filepath") == target)["cnn_embedding"]
        os.utime(target, (time.time() + 5, time.time() + 5))
        third = fod.compute_embeddings(ds)
        assert third.num_computed == 1 and third.num_reused == n - 1
        np.testing.assert_allclose(
            ds.one(F("filepath") == target)["cnn_embedding"], before, atol=1e-5
        )

        # another model recomputes everything; its identity is in the stamp
        other = CustomModel(
            name="mean-colour",
            model=lambda b: b.float().mean((2, 3)),
            transform=_to_uint8_tensor,
        )
        fourth = fod.compute_embeddings(ds, model=other, num_workers=0)
        assert fourth.num_computed == n
        assert ds.exists("cnn_embedding").first()["cnn_embedding"].shape == (3,)
        assert set(ds.exists("cnn_embedding").values("cnn_embedding_stamp")) >= {
            s.replace("efficientnet-lite0", "custom:mean-colour") for s in stamps[:1]
        }
        # and overwrite=True recomputes with the same model
        fifth = fod.compute_embeddings(ds, model=other, overwrite=True, num_workers=0)
        assert fifth.num_computed == n and fifth.num_reused == 0

        # the default model never silently replaces another model's vectors
        with pytest.raises(ValueError, match="holds embeddings of model 'custom:mean-colour'"):
            fod.compute_embeddings(ds)
        with pytest.raises(ValueError, match="pass that model to update them"):
            fod.find_duplicates(ds, encoder="cnn")
        assert ds.list_runs() == []
        fod.find_duplicates(ds, encoder="cnn", compute=False, threshold=0.999)
        assert ds.get_run_info("dedup").config.model == "custom:mean-colour"
    finally:
        ds.delete()


def _to_uint8_tensor(img):
    import torch

    small = np.asarray(img.convert("RGB").resize((32, 32)))
    return torch.from_numpy(small.transpose(2, 0, 1).copy())


def test_skip_failures_false_raises_after_storing(folder, fresh_dataset):
    ds = fresh_dataset
    ds.add_samples(
        [fo.Sample(filepath=p) for p in folder["originals"][:3] + [folder["bad"]["corrupt"]]]
    )
    with pytest.raises(ValueError, match="corrupt.jpg"):
        fod.compute_embeddings(ds, skip_failures=False)
    assert len(ds.exists("cnn_embedding")) == 3


def test_find_duplicates_with_cnn_end_to_end(folder):
    ds = _dataset(_good_paths(folder) + sorted(folder["bad"].values()))
    try:
        results = fod.find_duplicates(ds, encoder="cnn")
        s = results.summary
        assert s["num_failed"] == len(folder["bad"])
        assert s["num_groups"] == s["num_duplicates"] == len(folder["planted"])
        found = _found_pairs(results)
        assert found == {frozenset(p) for p in folder["planted"]}

        cfg = ds.get_run_info("dedup").config
        assert (cfg.encoder, cfg.metric, cfg.threshold) == ("cnn", "cosine", CNN_DEFAULT)
        assert cfg.model == "efficientnet-lite0"
        # the score, and the verification evidence of the default verified run
        assert {"dedup_similarity", "dedup_inliers"} <= set(cfg.output_fields)

        # originals were added first: they are kept, their copies tagged
        roles = dict(zip(*ds.values(["filepath", "dedup_role"])))
        sims = dict(zip(*ds.values(["filepath", "dedup_similarity"])))
        for orig, copy in folder["planted"]:
            assert (roles[orig], roles[copy]) == ("kept", "duplicate")
            assert sims[orig] == 1.0 and CNN_DEFAULT <= sims[copy] <= 1.0
        assert set(ds.match_tags("duplicate").values("filepath")) == {
            c for _, c in folder["planted"]
        }
        assert ds.get_field("dedup_similarity") is not None

        # a stricter threshold replaces the run and finds a subset (without
        # verification; verified, it narrows the candidate band)
        strict = fod.find_duplicates(ds, encoder="CNN", threshold=0.97, verify="none")
        assert _found_pairs(strict) < found
        assert strict.summary["num_computed"] == 0  # embeddings reused
        assert ds.get_run_info("dedup").config.threshold == 0.97
    finally:
        ds.delete()


def test_an_existing_embeddings_field_is_used_as_is(folder):
    ds = _dataset(_good_paths(folder))
    try:
        fod.compute_embeddings(ds)
        # embeddings that fiftyone_dedup did not write (as FiftyOne Brain or
        # a user's own code leaves them)
        ids, vecs = ds.values(["id", "cnn_embedding"])
        ds.add_sample_field("brain_embedding", fo.VectorField)
        ds.set_values("brain_embedding", dict(zip(ids, vecs)), key_field="id")
        ds.delete_sample_fields(["cnn_embedding", "cnn_embedding_stamp", "cnn_embedding_error"])

        by_field = fod.find_duplicates(ds, encoder="cnn", field="brain_embedding")
        assert "num_computed" not in by_field.summary
        assert ds.get_run_info("dedup").config.model == "field:brain_embedding"
        assert _found_pairs(by_field) == {frozenset(p) for p in folder["planted"]}
        assert not ds.has_sample_field("cnn_embedding")

        by_model = fod.find_duplicates(ds, encoder="cnn", model="brain_embedding", run_key="b")
        assert _found_pairs(by_model) == _found_pairs(by_field)

        report = fod.compute_embeddings(ds, model="brain_embedding")
        assert report.field == "brain_embedding"
        assert report.num_reused == len(ds) and report.num_computed == 0
        schema = set(ds.get_field_schema())

        # a model asked to write over them must be told to overwrite
        with pytest.raises(ValueError, match="did not compute; pass overwrite=True"):
            fod.find_duplicates(
                ds, encoder="cnn", field="brain_embedding", model="efficientnet-lite0",
                run_key="c",
            )
        assert set(ds.get_field_schema()) == schema
    finally:
        ds.delete()


def test_stored_vectors_read_as_fiftyone_reads_them():
    # Vectors are read from their stored bytes without FiftyOne's np.load
    # per value: every dtype and shape comes back as FiftyOne returns it
    from fiftyone_dedup.engine import stored_vectors

    rng = np.random.default_rng(0)
    vectors = [
        rng.normal(size=1280).astype(np.float32),
        rng.normal(size=1280).astype(np.float32),
        rng.normal(size=7),  # float64
        rng.normal(size=5).astype(np.float16),
        np.arange(6, dtype=np.int64),
        np.zeros(0, dtype=np.float32),
        np.asfortranarray(rng.normal(size=(3, 4))),
        rng.normal(size=(2, 3)).astype(np.float32),
        None,
    ]
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(len(vectors))])
        ds.add_sample_field("emb", fo.VectorField)
        ds.add_sample_field("arr", fo.ArrayField)
        ds.add_sample_field("lst", fo.ListField, subfield=fo.FloatField)
        ids = ds.values("id")
        ds.set_values(
            "emb", {i: v for i, v in zip(ids, vectors) if v is None or v.ndim == 1},
            key_field="id",
        )
        ds.set_values("arr", dict(zip(ids, vectors)), key_field="id")
        ds.set_values("lst", {ids[0]: [1.0, 2.5]}, key_field="id")
        for field in ("emb", "arr", "lst"):
            ours = stored_vectors.read_values(ds, ["id", field], field)
            theirs = ds.values(["id", field])
            assert ours[0] == theirs[0]
            for a, b in zip(ours[1], theirs[1]):
                if b is None or isinstance(b, list):
                    assert a == b
                else:
                    assert a.dtype == b.dtype and a.shape == b.shape
                    assert np.array_equal(a, b)
    finally:
        ds.delete()


@pytest.mark.parametrize(
    "values, message",
    [
        ([np.ones(4), np.ones(3)], "embeddings of different sizes"),
        ([np.array([1.0, np.nan]), np.ones(2)], "NaN or infinite"),
    ],
)
def test_unusable_embeddings_fields_are_explained(values, message):
    ds = fo.Dataset()
    try:
        ds.add_samples(
            [fo.Sample(filepath=f"/x/{i}.jpg", emb=v) for i, v in enumerate(values)]
        )
        with pytest.raises(ValueError, match=message):
            fod.find_duplicates(ds, encoder="cnn", field="emb")
        assert ds.list_runs() == []
        ds.add_samples([fo.Sample(filepath="/x/s.jpg", name="text")])
        with pytest.raises(ValueError, match="'name' is a StringField, not embedding"):
            fod.find_duplicates(ds, encoder="cnn", model="name")
    finally:
        ds.delete()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threshold=1.5), "between -1 and 1"),
        (dict(threshold=-2), "between -1 and 1"),
        (dict(threshold="high"), "between -1 and 1"),
        (dict(model="resnet-9000"), "Unknown model 'resnet-9000'"),
        (dict(model=42), "Unsupported model 42"),
        (dict(model=lambda b: b), "pass transform="),
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(device="tpu"), "Invalid device 'tpu'"),
        (dict(encoder="dhash", model="efficientnet-lite0"), "apply to the CNN encoder"),
    ],
)
def test_bad_cnn_arguments_change_nothing(folder, kwargs, message):
    ds = _dataset(folder["originals"][:3])
    try:
        before = set(ds.get_field_schema())
        kwargs = {"encoder": "cnn", **kwargs}
        with pytest.raises(ValueError, match=message):
            fod.find_duplicates(ds, **kwargs)
        assert set(ds.get_field_schema()) == before
        assert ds.list_runs() == []
    finally:
        ds.delete()


def test_an_offline_model_fails_before_anything_changes(folder, monkeypatch, tmp_path):
    from test_models import _closed_port

    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import urllib.request

    urllib.request.install_opener(None)
    ds = _dataset(folder["originals"][:3])
    try:
        before = set(ds.get_field_schema())
        with pytest.raises(fod.ModelUnavailableError, match="mobilenet_v3_small"):
            fod.find_duplicates(ds, encoder="cnn", model="mobilenet_v3_small")
        assert set(ds.get_field_schema()) == before and ds.list_runs() == []
    finally:
        ds.delete()
        urllib.request.install_opener(None)


# --------------------------------------------------------------- operators


def _uri(name):
    return f"{PLUGIN_NAME}/{name}"


def test_compute_embeddings_and_find_operators(folder):
    ds = _dataset(_good_paths(folder) + [folder["bad"]["corrupt"]])
    try:
        op = foo.get_operator(_uri("compute_embeddings"))
        result = op(ds)
        assert result.error is None
        assert len(ds.exists("cnn_embedding")) == len(ds) - 1
        errors = ds.exists("cnn_embedding_error").values("cnn_embedding_error")
        assert errors[0].startswith("cannot")

        find = foo.get_operator(_uri("find_duplicates"))
        summary = find(ds, encoder="cnn")
        assert summary["num_groups"] == len(folder["planted"])
        assert summary["num_computed"] == 0  # what the first operator stored
        cfg = ds.get_run_info("dedup").config
        assert cfg.threshold == CNN_DEFAULT and cfg.model == "efficientnet-lite0"

        # the form's CNN threshold is a minimum similarity, with its own key
        foo.execute_operator(
            _uri("find_duplicates"),
            dict(dataset=ds),
            params={"encoder": "cnn", "similarity": 0.97, "run_key": "strict"},
        )
        assert ds.get_run_info("strict").config.threshold == 0.97
    finally:
        ds.delete()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"encoder": "cnn", "similarity": 1.5}, "between -1 and 1"),
        ({"encoder": "cnn", "model": "resnet-9000"}, "Unknown model"),
    ],
)
def test_bad_cnn_form_values_are_rejected(folder, params, message):
    ds = _dataset(folder["originals"][:3])
    try:
        with pytest.raises(Exception) as err:
            foo.execute_operator(_uri("find_duplicates"), dict(dataset=ds), params=params)
        assert message in str(err.value), str(err.value)
        assert ds.list_runs() == [] and not ds.has_sample_field("cnn_embedding")
    finally:
        ds.delete()


# ------------------------------------------------------------ command line


def test_cli_with_cnn(folder, tmp_path):
    report_path = tmp_path / "report.json"
    args = [
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "CNN",
        "--model", "efficientnet-lite0", "--batch_size", "8",
        "--report", report_path, "--dataset", "cli-cnn", "--dry_run",
    ]
    out = helpers.run_cli(*args)
    assert out.returncode == 0, out.stderr
    rep = json.loads(report_path.read_text())
    assert rep["encoder"] == "CNN" and rep["model"] == "efficientnet-lite0"
    assert rep["threshold"] == CNN_DEFAULT and rep["metric"] == "cosine"
    pairs = {frozenset((g["keep"], d)) for g in rep["groups"] for d in g["duplicates"]}
    assert pairs == {frozenset(p) for p in folder["planted"]}
    assert {f["path"] for f in rep["failed"]} == set(folder["bad"].values())
    assert all(CNN_DEFAULT <= d["similarity"] <= 1 for g in rep["groups"] for d in g["details"])
    assert "CNN efficientnet-lite0 (threshold 0.85)" in out.stdout

    # the default encoder is CNN; a stricter threshold on the same dataset
    # reuses the embeddings
    again = helpers.run_cli(
        *args[:4], "--threshold", "0.97", "--report", report_path,
        "--dataset", "cli-cnn", "--dry_run",
    )
    assert again.returncode == 0, again.stderr
    rep2 = json.loads(report_path.read_text())
    assert rep2["encoder"] == "CNN" and rep2["threshold"] == 0.97
    assert rep2["summary"]["num_computed"] == 0
    fo.load_dataset("cli-cnn").delete()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet-9000"], "--model: Unknown model 'resnet-9000'"),
        (["--batch_size", "0"], "--batch_size must be 1 or more"),
        (["--encoder", "DHash", "--model", "vit_b_16"], "--model applies to --encoder CNN"),
        (["--device", "tpu"], "--device: Invalid device 'tpu'"),
        (["--threshold", "1.5"], "cosine similarity between -1 and 1"),
    ],
)
def test_cli_bad_cnn_arguments_exit_2_with_one_line(folder, args, message):
    out = helpers.run_cli(
        "-d", folder["dir"], "--no_data_dir", "--no_annot", *args, "--dataset", "cli-cnn-bad"
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, out.stderr
    assert message in lines[0] and lines[0].startswith("fiftyone-dedup: error:")
    assert not fo.dataset_exists("cli-cnn-bad")


def _form(operator, dataset, params):
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return foo.get_operator(_uri(operator)).resolve_input(ctx).type.properties


def test_find_form_explains_the_cnn_threshold_and_offers_its_default(folder):
    ds = _dataset(folder["originals"][:2])
    try:
        props = _form("find_duplicates", ds, {"encoder": "cnn"})
        sim = props["similarity"].to_json()
        assert "threshold" not in props
        assert sim["default"] == CNN_DEFAULT
        assert sim["type"]["min"] == -1 and sim["type"]["max"] == 1
        assert "minimum cosine similarity" in sim["view"]["description"].lower()
        assert "0.82-0.9" in sim["view"]["description"]
        assert props["model"].to_json()["default"] == "efficientnet-lite0"

        hashes = _form("find_duplicates", ds, {"encoder": "dhash"})
        assert hashes["threshold"].to_json()["default"] == 10
        assert "similarity" not in hashes and "model" not in hashes

        bad = _form("find_duplicates", ds, {"encoder": "cnn", "model": "nope"})["model"]
        assert bad.invalid and "Unknown model 'nope'" in bad.error_message
    finally:
        ds.delete()


def test_compute_embeddings_operator_delegated_reports_progress(folder):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    ds = _dataset(_good_paths(folder)[:6])
    try:
        queued = foo.get_operator(_uri("compute_embeddings"))(ds, delegate=True)
        assert queued.error is None and not ds.has_sample_field("cnn_embedding")
        dos = DelegatedOperationService()
        dos.execute_queued_operations(
            dataset_name=ds.name, operator=_uri("compute_embeddings")
        )
        ops = dos.list_operations(dataset_name=ds.name, operator=_uri("compute_embeddings"))
        assert [o.run_state for o in ops] == [ExecutionRunState.COMPLETED]
        assert ops[0].status is not None and ops[0].status.progress is not None
        assert len(ds.exists("cnn_embedding")) == 6
    finally:
        ds.delete()


def test_progress_callbacks_see_every_stage_complete(folder, fresh_dataset):
    from fiftyone_dedup import progress

    fresh_dataset.add_samples([fo.Sample(filepath=p) for p in folder["originals"][:3]])
    seen = []
    callback = progress.callback(lambda fraction, label: seen.append((label, fraction)), dt=60)
    fod.find_duplicates(fresh_dataset, encoder="cnn", progress=callback)
    labels = {label for label, _ in seen}
    assert {"Embedding images", "Features for verification", "Searching candidates"} <= labels
    assert all((label, 1.0) in seen for label in labels), seen


def test_rotation_invariance_matches_turned_copies(tmp_path, fresh_dataset):
    from PIL import Image

    paths = []
    for i in range(3):
        img = helpers.photo(i)
        paths.append(helpers.save(img, str(tmp_path / f"photo_{i}.jpg"), quality=95))
    turned = helpers.save(
        helpers.photo(0).transpose(Image.Transpose.ROTATE_90), str(tmp_path / "turned.jpg"),
        quality=95,
    )
    mirrored = helpers.save(
        helpers.photo(1).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        str(tmp_path / "mirrored.jpg"), quality=95,
    )
    fresh_dataset.add_samples([fo.Sample(filepath=p) for p in paths + [turned, mirrored]])

    plain = fod.find_duplicates(
        fresh_dataset, encoder="cnn", threshold=0.99, run_key="plain", verify="none"
    )
    assert plain.summary["num_duplicates"] == 0

    res = fod.find_duplicates(
        fresh_dataset, encoder="cnn", threshold=0.99, invariance="dihedral", run_key="inv",
        verify="none",
    )
    pairs = _found_pairs(res)
    expected = {frozenset((paths[0], turned)), frozenset((paths[1], mirrored))}
    assert pairs == expected
    # verified (the default), turned and mirrored copies are candidates anyway
    verified = fod.find_duplicates(fresh_dataset, encoder="cnn", threshold=0.99, run_key="ver")
    assert _found_pairs(verified) == expected
    assert res.config.invariance == "dihedral"
    # each sample stores its 7 flipped/rotated versions beside its embedding
    variants = fresh_dataset.values("cnn_embedding_variants")
    dim = len(fresh_dataset.first()["cnn_embedding"])
    assert all(len(v) == 7 and all(len(x) == dim for x in v) for v in variants)

    # embeddings used as found have no versions: invariance says what to do
    fresh_dataset.clone_sample_field("cnn_embedding", "my_vectors")
    with pytest.raises(ValueError, match="flipped/rotated versions"):
        fod.find_duplicates(
            fresh_dataset, encoder="cnn", model="my_vectors", invariance="flip",
            run_key="asis",
        )
