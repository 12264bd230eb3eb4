"""HTTP routes, one module per API resource."""


def build_router():
    from ..server import Router
    from . import container_ops, containers, execs, images, system
    r = Router()
    for mod in (system, containers, container_ops, execs, images):
        mod.register(r)
    return r
