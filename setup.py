"""Build step only (the metadata is in pyproject.toml): put provision/ and the Vagrantfile,
which stay at the top of the source tree, into the wheel as ``hostbridge/_provision/``, where
``hostbridge.resources`` finds them."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithProvision(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        dest = os.path.join(self.build_lib, "hostbridge", "_provision")
        shutil.rmtree(dest, ignore_errors=True)  # a file removed from provision/ must not linger in build/
        for top, dirs, files in os.walk("provision"):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if not name.endswith(".pyc"):
                    src = os.path.join(top, name)
                    self.mkpath(os.path.join(dest, os.path.relpath(top, "provision")))
                    self.copy_file(src, os.path.join(dest, os.path.relpath(src, "provision")))
        self.copy_file("Vagrantfile", os.path.join(dest, "Vagrantfile"))


setup(cmdclass={"build_py": BuildWithProvision})
