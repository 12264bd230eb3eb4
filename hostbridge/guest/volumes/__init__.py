"""Volumes: named and anonymous volumes, and the resolution of a container's mounts."""
