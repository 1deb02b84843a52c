"""Build hook: ship the repository's protocol files inside the package (see sbdbench/resources.py).

``datasets/*.toml``, ``baselines/*.toml`` and ``baselines/reported.csv`` stay in the repository, in one
copy (``sbdbench tune`` writes there); building copies them into ``sbdbench/_protocol/`` of the build
tree, so the wheel carries them as package data. Everything else is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTOCOL = {"datasets": ("*.toml",), "baselines": ("*.toml", "reported.csv")}


class BuildWithProtocol(build_py):
    """``build_py`` that also copies the protocol folders into ``<build>/sbdbench/_protocol/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders directly
        shipped = Path(self.build_lib) / "sbdbench" / "_protocol"
        shutil.rmtree(shipped, ignore_errors=True)  # a reused build/ must not ship files deleted since
        for folder, patterns in PROTOCOL.items():
            dest = shipped / folder
            dest.mkdir(parents=True, exist_ok=True)
            for src in sorted(p for pattern in patterns for p in (ROOT / folder).glob(pattern)):
                self.copy_file(str(src), str(dest / src.name))


setup(cmdclass={"build_py": BuildWithProtocol})
