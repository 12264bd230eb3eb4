"""``GET /version``'s document: what this engine is, known before any of it has started."""

from __future__ import annotations

import os
import sys

from . import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from .goarch import go_arch


def version():
    """docker's SystemVersion for this engine (dockerd omits Experimental when false)."""
    uname = os.uname()
    python = "python%d.%d.%d" % sys.version_info[:3]  # platform.python_version(), without importing platform
    comp = {"Name": "Engine", "Version": ENGINE_VERSION,
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                        "Arch": go_arch(), "KernelVersion": uname.release, "GoVersion": python,
                        "GitCommit": "", "BuildTime": "", "Experimental": "false"}}
    return {"Platform": {"Name": "hostbridge engine"}, "Components": [comp], "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
            "GoVersion": python, "Os": "linux", "Arch": go_arch(),
            "KernelVersion": uname.release, "BuildTime": ""}
