"""A real, file-backed keyring backend for tests (the OS keyring cannot be used here).

Set via ``keyring.set_keyring(FileKeyring(path))``, or in a subprocess with
``PYTHON_KEYRING_BACKEND=tests.unit.filekeyring.FileKeyring`` and ``HOSTBRIDGE_TEST_KEYRING``=path.
It stores what it is given (a JSON file, test data only) and returns it: not a mock.
"""

import json
import os

import keyring.backend
import keyring.errors


class _OnlyWhenChosen:
    """``priority`` that keeps a test backend out of keyring's discovery unless configured."""

    def __init__(self, env=None):
        self.env = env

    def __get__(self, obj, cls):
        if self.env and os.environ.get(self.env):
            return 1
        raise RuntimeError("test backend: chosen explicitly only")


class FileKeyring(keyring.backend.KeyringBackend):
    priority = _OnlyWhenChosen("HOSTBRIDGE_TEST_KEYRING")

    def __init__(self, path=None):
        super().__init__()
        self.path = path or os.environ["HOSTBRIDGE_TEST_KEYRING"]

    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save(self, data):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def get_password(self, service, username):
        return self._load().get(service, {}).get(username)

    def set_password(self, service, username, password):
        data = self._load()
        data.setdefault(service, {})[username] = password
        self._save(data)

    def delete_password(self, service, username):
        data = self._load()
        if username not in data.get(service, {}):
            raise keyring.errors.PasswordDeleteError("not found")
        del data[service][username]
        self._save(data)


class LockedKeyring(keyring.backend.KeyringBackend):
    """A backend that refuses every call, as a locked OS keyring does."""

    priority = _OnlyWhenChosen()

    def get_password(self, service, username):
        raise keyring.errors.KeyringLocked("the keyring is locked")

    def set_password(self, service, username, password):
        raise keyring.errors.KeyringLocked("the keyring is locked")

    def delete_password(self, service, username):
        raise keyring.errors.KeyringLocked("the keyring is locked")
