"""The container runtime: a bundle (config.json) in, a supervised container out.

Knows nothing of HTTP or images. ``client.ShimClient`` is the engine's entry point; the shim
(``shim.py``) and the exec helper (``execproc.py``) run as fresh processes of their own.
"""
