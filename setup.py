"""The one compiled part: greedy box merging in C (overfeat_edge/pipeline/_greedy.c).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is present the
install still succeeds and merge.py runs its numpy version (`overfeat-edge doctor` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("overfeat_edge.pipeline._greedy", ["overfeat_edge/pipeline/_greedy.c"], optional=True),
    ]
)
