"""HTTP routes, one module per API resource."""


def build_router():
    from ..server import Router
    from . import build, container_ops, containers, execs, images, networks, plugins, swarm, system, volumes
    r = Router()
    for mod in (system, containers, container_ops, execs, images, build, networks, volumes, swarm, plugins):
        mod.register(r)
    return r
