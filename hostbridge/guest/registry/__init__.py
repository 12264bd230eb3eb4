"""Registry v2 client side of the engine: pull, push, search and login (standard library only).

``client`` speaks HTTP and auth to one registry, ``manifest`` negotiates and validates
manifests, ``pull``/``push`` move images, ``search`` finds repositories.
"""
