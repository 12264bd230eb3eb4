"""VM drivers (vagrant, qemu), the guest image cache, and the machine that sequences them."""
