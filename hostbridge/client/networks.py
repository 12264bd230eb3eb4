"""Network endpoints: list, create, inspect, remove, connect, disconnect, prune."""

from __future__ import annotations


class NetworkAPIMixin:
    """``/networks/...``."""

    def networks(self, filters=None):
        """``GET /networks``: docker Network dicts."""
        return self._json(self._get("/networks", params={"filters": filters or None})) or []

    def create_network(self, config):
        """``POST /networks/create`` with docker's NetworkCreateRequest (``{"Name": …, "Driver": …}``).

        Returns:
            ``{"Id": …, "Warning": …}``.
        Raises:
            Conflict: a network of that name exists.
        """
        return self._json(self._post("/networks/create", json_body=config))

    def inspect_network(self, network, verbose=False):
        """``GET /networks/ID``: the docker Network dict."""
        return self._json(self._get("/networks/{}", network, params={"verbose": verbose or None}))

    def remove_network(self, network):
        """``DELETE /networks/ID``.

        Raises:
            NotFound: no such network. Conflict: containers are still connected.
        """
        self._delete("/networks/{}", network)

    def connect_container_to_network(self, container, network, aliases=None, ipv4_address=None, links=None,
                                     ipv6_address=None):
        """``POST /networks/ID/connect``: attach a container (running or not) to a network."""
        endpoint = {}
        if aliases:
            endpoint["Aliases"] = list(aliases)
        ipam = {k: v for k, v in (("IPv4Address", ipv4_address), ("IPv6Address", ipv6_address)) if v}
        if ipam:
            endpoint["IPAMConfig"] = ipam
        if links:
            endpoint["Links"] = list(links)
        self._post("/networks/{}/connect", network, json_body={"Container": container, "EndpointConfig": endpoint})

    def disconnect_container_from_network(self, container, network, force=False):
        """``POST /networks/ID/disconnect``."""
        self._post("/networks/{}/disconnect", network, json_body={"Container": container, "Force": force})

    def prune_networks(self, filters=None):
        """``POST /networks/prune``: remove unused networks.

        Returns:
            ``{"NetworksDeleted": [names…]}``.
        """
        return self._json(self._post("/networks/prune", params={"filters": filters or None})) or {}
