"""The CLI's hot path must not import paramiko (~0.3 s): only the agent and set-up do."""

import subprocess
import sys


def test_endpoint_lookup_modules_do_not_import_paramiko():
    code = ("import sys; import hostbridge.machines.remote, hostbridge.cli.env, hostbridge.cli.remote, "
            "hostbridge.tunnel.control, hostbridge.tunnel.localhttp; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko', 'cryptography')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/tests/", 1)[0]).stdout
    assert out.strip() == "[]"
