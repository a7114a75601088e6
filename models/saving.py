"""Loading `model.keras` anywhere: every class reviewflow writes is registered here, and failures say why.

`model.keras` is loaded with Keras safe mode on, so only registered classes can
be rebuilt. Whether a class is registered must not depend on which modules a
command happened to import: importing this module imports every module that
registers one (the zoo's layers and optimizers, `standardize`), and KerasHub
when the file holds a fine-tuned pretrained encoder. A process that
loads a run, reviewflow's commands or a user's script, needs only

    from models import saving
    model = saving.load_model("runs/ng/model.keras")
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import keras

import models.zoo.layers  # noqa: F401 - registers the zoo's layers
import models.zoo.optimizers  # noqa: F401 - registers LazyAdam (in checkpoints/best.keras; not in model.keras)
import pipeline.text  # noqa: F401 - registers `standardize`
from models import zoo
from pipeline.errors import ReviewflowError

# Every architecture's module, so that a class one registers itself (pretrained's PresetPreprocessor, or a new
# model's own layer) is known wherever a run loads; KerasHub itself is imported only when a file needs it.
for _spec in zoo.SPECS:
    _spec.module()

# The class or function that Keras could not find, in its own words ("Could not locate class 'LazyAdam'").
_UNKNOWN_NAME = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def versions() -> dict[str, str]:
    """The versions that write a run (recorded in config.json) and that read it."""
    import tensorflow as tf
    import tensorflow_text

    return {"reviewflow": reviewflow_version(), "keras": keras.__version__, "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__}


def reviewflow_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("reviewflow")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def load_model(path: Path, written_by: dict | None = None):
    """The end-to-end model in `path`, loaded with safe mode on; a ReviewflowError that says why if it cannot be.

    `written_by`: the versions recorded in the run's config.json, named in the error if loading fails.
    """
    path = Path(path)
    if _mentions_keras_hub(path):  # a fine-tuned pretrained encoder: KerasHub registers its classes on import
        import keras_hub  # noqa: F401
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise ReviewflowError(f"{path}: {explain(exc, written_by)}") from exc


def _mentions_keras_hub(path: Path) -> bool:
    """Whether the file's model config names a KerasHub class (imported only then: it takes seconds)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return b'"keras_hub' in archive.read("config.json")
    except (zipfile.BadZipFile, KeyError, OSError):
        return False  # keras.saving.load_model says what is wrong with the file


def explain(exc: BaseException, written_by: dict | None) -> str:
    """Why a load failed and what to do, from the chain of Keras's exceptions."""
    messages = [str(error) for error in _chain(exc)]
    unknown = next((match.group(1) for message in messages if (match := _UNKNOWN_NAME.search(message))), None)
    if any("lambda" in message and "safe_mode" in message for message in messages):
        return ("refused to load: the file carries Python code (a Lambda layer), which safe mode never runs. "
                "reviewflow never writes such a file, so it was replaced or changed since `fit`: restore it "
                "from a trusted copy, or re-run `fit`.")
    if isinstance(exc, (zipfile.BadZipFile, OSError)) or any("zip file" in m.lower() for m in messages):
        return ("cannot be read as a .keras file (a zip archive): it is truncated or damaged. Re-run `fit`, "
                "or restore it from a trusted copy.")
    written, running = _describe(written_by), _describe(versions())
    if written_by and written == running:
        advice = ("The versions match, so the file was changed after `fit` (or written by a modified "
                  "reviewflow): restore it from a trusted copy, or re-run `fit`.")
    else:
        advice = ("Load it with the versions that wrote it (upgrade reviewflow if it is newer), or re-run "
                  "`fit` with this one.")
    what = (f"it uses {unknown!r}, which this reviewflow does not define" if unknown is not None else
            messages[-1].splitlines()[0][:300])
    return f"cannot be loaded: {what}. The run was written by {written}; this is {running}. {advice}"


def _chain(exc: BaseException):
    """The exception and its causes, outermost first (Keras wraps the inner layer's error in the model's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _describe(found: dict | None) -> str:
    if not found:
        return "an unrecorded version of reviewflow (its config.json names none)"
    return ", ".join(f"{name} {found[name]}" for name in ("reviewflow", "keras", "tensorflow", "tensorflow_text")
                     if name in found)
