"""One exception family for user errors.

Anything the user can fix (a bad file, a typo in a YAML key, a checkpoint of another architecture)
raises a `ColoraError` whose message is one plain sentence saying what is wrong and what to do.
The CLI prints that sentence and exits 2 instead of showing a traceback.
"""


class ColoraError(Exception):
    """A user error: the message is meant to be shown as is."""


class OptionsError(ColoraError):
    """Invalid options (YAML or --set overrides)."""


class ImageReadError(ColoraError):
    """A file that is not a readable image (corrupt, truncated, empty, unsupported)."""


class CheckpointError(ColoraError):
    """A checkpoint that cannot be read or does not fit the architecture."""


class AdapterError(ColoraError):
    """An adapter that cannot be attached, loaded or saved."""


def one_line(text):
    """`text` with control characters (a newline in a file name, say) shown as escapes, so that one
    report stays one line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))
