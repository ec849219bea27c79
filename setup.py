"""Ships the mixin's jsonnet sources (repo root) inside the wheel as etcd_inspector/mixin_data.

Everything else is in pyproject.toml; this only hooks build_py so `pip install .` and the
Docker image can run `etcd-inspector generate` without a source checkout.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

# Kept in step with etcd_inspector.mixin.SOURCE_PATTERNS (tests/test_mixin_render.py checks).
SOURCE_PATTERNS = (
    "mixin.libsonnet",
    "config.libsonnet",
    "jsonnetfile.json",
    "rules/*.libsonnet",
    "dashboards/*.libsonnet",
    "dashboards/lib/*.libsonnet",
    "servicemonitors/*.libsonnet",
)


class BuildWithMixin(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        dest = os.path.join(self.build_lib, "etcd_inspector", "mixin_data")
        for pattern in SOURCE_PATTERNS:
            for src in sorted(glob.glob(os.path.join(here, pattern))):
                target = os.path.join(dest, os.path.relpath(src, here))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(src, target)


setup(cmdclass={"build_py": BuildWithMixin})
