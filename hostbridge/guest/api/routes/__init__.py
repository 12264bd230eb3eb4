"""HTTP routes, one module per API resource."""


def build_router():
    from ..server import Router
    from . import build, container_ops, containers, execs, images, networks, plugins, swarm, system, volumes
    r = Router()
    for mod in (system, containers, container_ops, execs, images, build, networks, volumes, swarm, plugins):
        mod.register(r)
    return r


def early_router():
    """The routes answered while the engine is still starting: they need none of it."""
    from ..server import Router
    from . import system
    r = Router()
    r.add("GET", "/_ping", system.ping)
    r.add("GET", "/version", system.version)
    return r
