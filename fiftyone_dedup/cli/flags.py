"""How the command line words the engine's errors: a
:class:`~fiftyone_dedup.options.ParameterError` names a Python parameter,
and the user reads the flag that sets it.
"""

#: parameters of the engine whose flag is not ``--<parameter>``
PARAM_FLAGS = {
    "dataset_name": "--dataset",
    "trusted_roots": "--trust_root",
    "on_samples": "--moved_samples",
}

#: settings, as the engine's messages write them, that a flag makes
SETTING_FLAGS = {
    "data_dir=False": "--no_data_dir",
    "annotations=False": "--no_annot",
    "overwrite=True": "--overwrite_dataset",
}


def flag_for(param):
    """The flag that sets an engine parameter, for messages.

    Args:
        param: a parameter's Python name, e.g. ``"trust_root"``

    Returns:
        the flag (``"--trust_root"``), or ``param`` when no flag sets it
    """
    from fiftyone_dedup.cli import parser

    if param in PARAM_FLAGS:
        return PARAM_FLAGS[param]
    return f"--{param}" if f"--{param}" in parser.flags() else param


def user_text(error, also=()):
    """An error's message in the command line's words.

    Args:
        error: an exception; a ``ParameterError`` is reworded with flags
        also (()): other parameters the message names, reworded too

    Returns:
        the message
    """
    from fiftyone_dedup.options import ParameterError

    if not isinstance(error, ParameterError):
        return str(error)
    text = error.message
    for param in (error.param, *also):
        text = ParameterError(param, text).for_name(flag_for(param))
    for setting, flag in SETTING_FLAGS.items():
        text = text.replace(setting, flag)
    return text


def one_line(error):
    """:func:`user_text` on one line (line breaks become `` | ``)."""
    text = user_text(error).strip()
    return text if "\n" not in text else text.replace("\n", " | ")
