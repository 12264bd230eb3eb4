"""--memory-swappiness: applied where the memory controller is v1, discarded with dockerd's warning on v2."""

from hostbridge.guest.containers.config import SWAPPINESS_DISCARDED, discard_unsupported
from hostbridge.guest.runtime import cgroups


def test_swappiness_is_a_v1_knob(tmp_path):
    (tmp_path / "memory.swappiness").write_text("60\n")
    assert cgroups.swappiness({"memory": ("v1", str(tmp_path))}) is True
    assert cgroups.swappiness({"memory": ("v2", str(tmp_path))}) is False
    assert cgroups.swappiness({}) is False


def test_v2_discards_it_with_dockerd_s_warning():
    hc = {"MemorySwappiness": 60, "Memory": 1 << 20}
    assert discard_unsupported(hc, swappiness=False) == [
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
        "Memory swappiness discarded."] == [SWAPPINESS_DISCARDED]
    assert hc == {"MemorySwappiness": None, "Memory": 1 << 20}  # inspect shows null, as dockerd's
    hc = {"MemorySwappiness": 60}
    assert discard_unsupported(hc, swappiness=True) == [] and hc == {"MemorySwappiness": 60}
    assert discard_unsupported({"MemorySwappiness": None}, swappiness=False) == []
    assert discard_unsupported("not a dict", swappiness=False) == []
