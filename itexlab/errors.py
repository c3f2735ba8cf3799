"""The errors itexlab raises about what it was given: one module without imports, so the command
line can turn them into one-line messages without loading TensorFlow, and callers can catch
`ItexlabError` for all of them. Each is also a ValueError (or RuntimeError), as before."""


def first_line(error: Exception, limit: int = 300) -> str:
    """The first line of an error's message (TF's messages run to pages of traceback)."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


class ItexlabError(Exception):
    """A problem with what itexlab was given or where it runs; the message names it."""


class ModelError(ItexlabError, ValueError):
    """The model cannot be read, or has no usable inputs/outputs."""


class CalibrationDataError(ItexlabError, ValueError):
    """The calibration data cannot be fed to the model."""


class InputError(ItexlabError, ValueError):
    """Run-time input that does not fit the model."""


class TargetError(ItexlabError, OSError):
    """A model or file cannot be written where it was asked to go (a symbolic link, a folder that is
    not writable, a full disk)."""


class TargetExistsError(TargetError, FileExistsError):
    """Writing would replace something that is not an itexlab model written before."""


class ConfigError(ItexlabError, ValueError):
    """A configuration value is out of range."""


class IncVersionError(ItexlabError, RuntimeError):
    """The installed INC is not the version whose internals itexlab's INC boundary was written against."""


class TuningError(ItexlabError, RuntimeError):
    """Accuracy-driven tuning cannot go on: the user's eval function failed or returned no number."""
