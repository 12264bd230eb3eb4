"""Registry secrets are never handed to a plaintext keyring backend (unless the user opts in).

Real backend classes: keyrings.alt's PlaintextKeyring (a file of base64 secrets) and keyring's
null backend are refused; the opt-in variable named in the error lets them through.
"""

import json
import os
import subprocess
import sys

import keyring
import keyring.backends.chainer
import keyring.backends.null
import pytest

from hostbridge import credentials
from hostbridge.errors import CredentialsError

alt_file = pytest.importorskip("keyrings.alt.file", reason="keyrings.alt (the test extra) is not installed")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def use_backend(monkeypatch):
    monkeypatch.delenv(credentials.ALLOW_INSECURE_ENV, raising=False)
    previous = keyring.get_keyring()

    def use(backend):
        keyring.set_keyring(backend)
        return backend
    yield use
    keyring.set_keyring(previous)


@pytest.fixture
def plaintext(tmp_path):
    kr = alt_file.PlaintextKeyring()
    kr.file_path = str(tmp_path / "keyring_pass.cfg")  # keyrings.alt's own override point
    return kr


def test_plaintext_backend_is_refused_and_nothing_is_written(use_backend, plaintext):
    use_backend(plaintext)
    with pytest.raises(CredentialsError) as e:
        credentials.store("myreg:5000", "ana", "s3cret")
    msg = str(e.value)
    assert "keyrings.alt.file.PlaintextKeyring" in msg and credentials.ALLOW_INSECURE_ENV in msg
    assert "\n" not in msg
    assert not os.path.exists(plaintext.file_path)


def test_opt_in_lets_a_plaintext_backend_store(use_backend, plaintext, monkeypatch):
    use_backend(plaintext)
    monkeypatch.setenv(credentials.ALLOW_INSECURE_ENV, "1")
    credentials.store("myreg:5000", "ana", "s3cret")
    assert credentials.get("myreg:5000").secret == "s3cret"
    with open(plaintext.file_path) as f:
        assert "ana" in f.read()  # what the refusal protects from: the secret sits in this file


def test_null_backend_is_refused(use_backend):
    use_backend(keyring.backends.null.Keyring())
    with pytest.raises(CredentialsError, match="keyring.backends.null.Keyring"):
        credentials.store("myreg:5000", "ana", "s3cret")


def test_a_chainer_holding_a_plaintext_backend_is_refused(use_backend, plaintext):
    chainer = keyring.backends.chainer.ChainerBackend()
    chainer.__dict__["backends"] = [plaintext]  # keyring's default when it finds several backends
    use_backend(chainer)
    with pytest.raises(CredentialsError, match="PlaintextKeyring"):
        credentials.store("myreg:5000", "ana", "s3cret")
    assert not os.path.exists(plaintext.file_path)


def test_check_passes_a_backend_of_os_keyring_priority():
    class Secure(keyring.backend.KeyringBackend):
        priority = 5  # as Secret Service, macOS Keychain and Windows Credential Locker score

        def get_password(self, service, username):
            return None

        def set_password(self, service, username, password):
            pass

        def delete_password(self, service, username):
            pass
    credentials.check_backend(Secure())


def test_credential_helper_refuses_with_one_line(tmp_path):
    """``docker-credential-hostbridge store`` with a plaintext backend: exit 1, one line, no file."""
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
               XDG_DATA_HOME=str(tmp_path / "data"), PYTHONPATH=REPO)
    env.pop(credentials.ALLOW_INSECURE_ENV, None)
    r = subprocess.run([sys.executable, "-c", "import sys; from hostbridge.credentials import helper_main; "
                        "sys.exit(helper_main())", "store"], input=json.dumps(
                            {"ServerURL": "myreg:5000", "Username": "ana", "Secret": "s3cret"}),
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    assert r.stdout.count("\n") == 1 and credentials.ALLOW_INSECURE_ENV in r.stdout
    assert not (tmp_path / "data").exists() or "s3cret" not in "".join(
        open(os.path.join(d, f)).read() for d, _, fs in os.walk(tmp_path / "data") for f in fs)
