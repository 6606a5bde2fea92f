"""The one compiled part of sklearn-gd, the one-pass row kernel
(``sklearn_gd/objective/_rowpass.c``). It is optional: where it does not
build (no C compiler, no Python headers) the package installs without it and computes
the same gradients with torch's matrix-vector products."""

import os

from setuptools import Extension, setup

if os.name == "nt":
    flags = ["/O2"]
else:
    # -fopenmp-simd: the kernel's simd loops, without the OpenMP runtime;
    # -fno-trapping-math: branches of the losses become selects (no program
    # here reads floating-point exception flags; results are unchanged)
    flags = ["-O3", "-fopenmp-simd", "-fno-trapping-math", "-pthread"]

setup(
    ext_modules=[
        Extension(
            "sklearn_gd.objective._rowpass",
            sources=["sklearn_gd/objective/_rowpass.c"],
            extra_compile_args=flags,
            extra_link_args=[] if os.name == "nt" else ["-pthread"],
            optional=True,
        )
    ]
)
