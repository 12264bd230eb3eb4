import pytest

from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.images.reference import parse, parse_normalized


@pytest.mark.parametrize("text,full,familiar", [
    ("redis", "docker.io/library/redis:latest", "redis:latest"),
    ("redis:7", "docker.io/library/redis:7", "redis:7"),
    ("ana/app", "docker.io/ana/app:latest", "ana/app:latest"),
    ("localhost:5000/team/app:1.0", "localhost:5000/team/app:1.0", "localhost:5000/team/app:1.0"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    ("index.docker.io/library/redis", "docker.io/library/redis:latest", "redis:latest"),
])
def test_normalisation_matches_docker(text, full, familiar):
    ref = parse_normalized(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_digest_references():
    d = "sha256:" + "ab" * 32
    ref = parse("busybox@" + d)
    assert ref.digest == d and ref.tag is None
    assert parse_normalized("busybox@" + d).tag is None


@pytest.mark.parametrize("bad", ["", "Upper", "ana/App", "a:b:c", "x@sha256:", "-bad", "a//b", "x:" + "t" * 200])
def test_invalid_references_are_refused(bad):
    with pytest.raises(InvalidParameter):
        parse(bad)
