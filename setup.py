"""Only the optional C shim lives here; everything else is in setup.cfg."""

from setuptools import Extension, setup

setup(ext_modules=[
    # An LD_PRELOAD library, not a Python module: keeps `data-service` on loopback (see the C file).
    # optional: without a C compiler the install still succeeds, and data-service then needs --host.
    Extension("pipeline._loopback_bind", ["pipeline/loopback_bind.c"], optional=True),
])
