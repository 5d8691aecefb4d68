"""The operators' shared form pieces: the options' own validation shown on
the form's fields (no database needed)."""

import fiftyone.operators.types as types

from fiftyone_dedup import options
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.app import forms


def _validate(**kwargs):
    options.FindOptions.from_kwargs(**kwargs).validated()


def _form():
    inputs = types.Object()
    inputs.int("threshold")
    inputs.str("tag")
    inputs.enum("grouping", ["near", "components"])
    return inputs


def test_every_bad_option_is_shown_on_its_own_field():
    inputs = _form()
    valid = forms.check_options(
        inputs, _validate, dict(encoder="dhash", threshold=99, tag=""),
    )
    assert not valid
    props = inputs.properties
    assert props["threshold"].invalid
    assert props["threshold"].error_message.startswith("Threshold must be between 0 and 64")
    assert props["tag"].invalid and "Tag must be a non-empty string" in props["tag"].error_message
    assert not props["grouping"].invalid


def test_a_field_flagged_already_or_an_enum_refusing_keeps_its_message():
    inputs = _form()
    inputs.properties["threshold"].invalid = True
    inputs.properties["threshold"].error_message = "the form's own words"
    forms.check_options(inputs, _validate, dict(threshold=99, grouping="kmeans"))
    assert inputs.properties["threshold"].error_message == "the form's own words"
    # FiftyOne says "Invalid enum value" itself for a value not among the choices
    assert not inputs.properties["grouping"].invalid


def test_the_threshold_field_follows_the_metric_and_an_option_without_a_field_is_shown():
    cnn = encoders.get_encoder("cnn")
    inputs = types.Object()
    forms.threshold_input(inputs, cnn)
    assert forms.threshold_key(cnn) == "similarity" and "similarity" in inputs.properties
    field = inputs.properties["similarity"]
    assert field.view.label == cnn.threshold_label and field.type.to_json()["float"]
    valid = forms.check_options(
        inputs, _validate, dict(encoder="cnn", threshold=3.0, min_samples=0),
        {"threshold": "similarity"},
    )
    assert not valid
    assert "between -1 and 1" in inputs.properties["similarity"].error_message
    assert inputs.properties["min_samples_error"].invalid  # no field: an error line
