"""The SSH side of hostbridge: host-key pinning, connections, the tunnel agent, port forwards.

Only the agent process and deploy/remote set-up import paramiko; the CLI's hot path talks HTTP
to the agent's local endpoint and never imports this package's ``ssh`` module.
"""
