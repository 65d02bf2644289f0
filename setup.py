"""Build hook for the one C extension; all project metadata lives in pyproject.toml.

``logbroker.records._speedups`` (logbroker/records/_speedups.c) speeds up record encoding and
decoding.  It is optional: when it cannot be compiled (no compiler, no Python headers) setuptools
only warns, the install goes on, and logbroker.records.batch runs its pure-Python loops instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "logbroker.records._speedups",
            sources=["logbroker/records/_speedups.c"],
            optional=True,
        ),
    ],
)
