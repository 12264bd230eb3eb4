"""Machines: where the engine runs (native on this host, a VM, or a remote host), the VM drivers and how to reach it."""
