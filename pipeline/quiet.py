"""Keep TensorFlow's start-up noise (C++ log lines, CUDA probing) away from users."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_silenced():
    # TensorFlow's C++ logs bypass Python and TF_CPP_MIN_LOG_LEVEL at import
    # time ("All log messages before absl::InitializeLog() ..."), so the file
    # descriptor itself is pointed at /dev/null while it loads.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False, start_runtime: bool = True) -> None:
    """Import TensorFlow, tensorflow-text and Keras; silently unless `verbose`.

    `start_runtime=False` leaves the runtime unstarted, for a multi-worker
    strategy that must be created before the first op.
    """
    if verbose:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        if start_runtime:
            tf.constant(0)  # the first op initializes the runtime, which logs too
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")


def quiet_beam() -> None:
    """Keep Apache Beam's import notices and its logged worker tracebacks away; our error says what failed."""
    import importlib.util
    import logging

    if importlib.util.find_spec("apache_beam") is None:
        return  # the shard command says how to install it
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its GCP modules warn on the root logger while they import
    try:
        import apache_beam  # noqa: F401
        import apache_beam.io.gcp.bigquery  # noqa: F401
    finally:
        root.setLevel(level)
