"""Shell completion: ``hostbridge completion bash|zsh|fish|powershell`` and the names it offers.

Click answers completion requests when ``_HOSTBRIDGE_COMPLETE`` is set (the scripts set it);
arguments and options that name engine objects complete from the engine (containers, images,
networks, volumes) or from the machine records. An engine that does not answer completes
nothing: a shell's Tab never fails loudly.
"""

from __future__ import annotations

import functools
import os

import click

COMPLETE_VAR = "_HOSTBRIDGE_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell")

# a parameter's name → the kinds of names it takes
_KINDS = {"container": ("containers",), "containers": ("containers",), "image": ("images",),
          "images": ("images",), "source": ("images",), "network": ("networks",), "networks": ("networks",),
          "volume": ("volumes",), "volumes": ("volumes",), "machine": ("machines",),
          "names": ("containers", "images", "networks", "volumes")}

# click has no PowerShell support: this asks click's bash protocol ("type,value" lines) instead
_POWERSHELL = r"""Register-ArgumentCompleter -Native -CommandName hostbridge -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $words = @($commandAst.CommandElements | ForEach-Object { $_.ToString() })
    $cword = if ($wordToComplete) { $words.Count - 1 } else { $words.Count }
    $env:COMP_WORDS = $words -join ' '
    $env:COMP_CWORD = $cword
    $env:_HOSTBRIDGE_COMPLETE = 'bash_complete'
    try {
        hostbridge | ForEach-Object {
            $kind, $value = $_ -split ',', 2
            if ($kind -eq 'plain') {
                [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
            }
        }
    } finally {
        Remove-Item Env:_HOSTBRIDGE_COMPLETE, Env:COMP_WORDS, Env:COMP_CWORD -ErrorAction SilentlyContinue
    }
}
"""


def script(shell: str) -> str:
    """The completion script for ``shell`` (to ``source``/``eval`` in its startup file)."""
    if shell == "powershell":
        return _POWERSHELL
    from click.shell_completion import get_completion_class

    from .main import cli

    comp = get_completion_class(shell)(cli, {}, "hostbridge", COMPLETE_VAR)
    return comp.source()


def complete(instruction: str, app) -> int:
    """Answer one completion request (``instruction`` is click's, e.g. ``bash_complete``)."""
    from click.shell_completion import shell_complete

    from .main import cli

    attach(cli)  # -m/--machine
    return shell_complete(cli, {"obj": app}, "hostbridge", COMPLETE_VAR, instruction)


def requested() -> str:
    """The completion instruction in the environment ("" when this is not a completion run)."""
    return os.environ.get(COMPLETE_VAR, "")


def attach(command) -> None:
    """Give ``command``'s parameters that name engine objects their completion (completion runs only)."""
    for p in getattr(command, "params", ()):
        kinds = _KINDS.get(p.name or "")
        if kinds:
            p.shell_complete = functools.partial(_complete, kinds)


def _complete(kinds, ctx, incomplete):
    from click.shell_completion import CompletionItem

    app = ctx.find_root().obj
    names = []
    for kind in kinds:
        try:
            names += _names(app, kind)
        except Exception:  # an engine that does not answer: nothing to offer, no error in the shell
            continue
    return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]


def _names(app, kind):
    if kind == "machines":
        from ..machines import vmmode

        return [r["name"] for r in vmmode.list_machines()]
    c = app.client
    if kind == "containers":
        return [n.lstrip("/") for x in c.containers(all=True) for n in x.get("Names") or ()]
    if kind == "images":
        return [t for x in c.images() for t in x.get("RepoTags") or () if t != "<none>:<none>"]
    if kind == "networks":
        return [x["Name"] for x in c.networks()]
    return [x["Name"] for x in (c.volumes().get("Volumes") or ())]


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_obj
def completion(app, shell):
    """Print the shell completion script (bash, zsh, fish or powershell).

    \b
    bash:        echo 'eval "$(hostbridge completion bash)"' >> ~/.bashrc
    zsh:         echo 'eval "$(hostbridge completion zsh)"' >> ~/.zshrc
    fish:        hostbridge completion fish > ~/.config/fish/completions/hostbridge.fish
    powershell:  hostbridge completion powershell | Out-String | Invoke-Expression
    """
    app.out(script(shell), nl=False)
