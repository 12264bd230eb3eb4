"""hostbridge: the docker engine API on any OS, through a VM, a remote host, or natively."""

__version__ = "0.1.0"
