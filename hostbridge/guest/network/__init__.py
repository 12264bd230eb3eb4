"""Container networking: networks, addresses, bridges and veths, NAT rules, port proxies."""
