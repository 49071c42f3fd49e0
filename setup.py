"""The compiled parts: greedy box merging and NMS (overfeat_edge/pipeline/_greedy.c), adaptive average
pooling from an integral image (overfeat_edge/pipeline/_pool.c: MTCNN's pyramid and crops).

Everything else is in pyproject.toml. The extensions are optional: where no C compiler is present the
install still succeeds and merge.py and preprocess.py run their numpy versions, with the same results
(`overfeat-edge doctor` says which). Floating-point contraction is off so that no fused multiply-add
changes a rounding against numpy's.
"""

from setuptools import Extension, setup

FLAGS = ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "overfeat_edge.pipeline._greedy",
            ["overfeat_edge/pipeline/_greedy.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "overfeat_edge.pipeline._pool", ["overfeat_edge/pipeline/_pool.c"], extra_compile_args=FLAGS, optional=True
        ),
    ]
)
