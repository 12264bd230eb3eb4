"""Debian's packages for the guest, verified along Debian's own chain of trust.

``archive.Archive`` is the client (InRelease signature → Packages hash → .deb hash);
``archive.fetch_packages`` wraps it with hostbridge's defaults. ``openpgp`` checks signatures,
``control`` parses control data and orders versions, ``index`` resolves dependencies,
``download`` does resumable, verified HTTP.
"""
