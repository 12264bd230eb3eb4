"""Machines: where the engine runs (native on this host, a VM, or a remote host) and how to reach it."""
