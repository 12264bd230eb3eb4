"""Entry point of the guest engine: ``python3 -m hostbridge.guest`` or ``python3 engine.pyz``.

Sub-commands:
    daemon  run the engine (the default)
    shim    supervise one container (started by the engine, never by hand)
    exec    run a process inside a running container (started by the engine)
    version print the engine version
"""

import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv.pop(0) if argv and not argv[0].startswith("-") else "daemon"
    if cmd == "daemon":
        from .daemon import main as run
    elif cmd == "shim":
        from .runtime.shim import main as run
    elif cmd == "zygote":
        from .runtime.zygote import main as run
    elif cmd == "exec":
        from .runtime.execproc import main as run
    elif cmd == "version":
        from . import ENGINE_VERSION, API_VERSION
        print("hostbridge-engine %s (API %s)" % (ENGINE_VERSION, API_VERSION))
        return 0
    else:
        sys.stderr.write("hostbridge engine: unknown command %r (daemon, shim, exec, version)\n" % cmd)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
