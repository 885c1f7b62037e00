"""SHA-256 of files, read in blocks (raw frames can be large), and the record of digests already
computed so that no later step reads the bytes again only to hash them.

The download step hashes each file while it writes it and checks it against the manifest; the
archive step hashes the bytes as it copies them into raw/<night>/ and records every archived
file's digest in raw/<night>/.sha256.json (the archive is read-only to every other step and never
rewritten, so the record stays true); the index step reads the digests from there.
"""
import hashlib
import json
import os

BLOCK = 1 << 20
RECORD = ".sha256.json"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter:
    """A binary file being written whose sha256 is computed from the same bytes, on the way."""

    def __init__(self, fh, digest=None):
        self.fh, self.digest = fh, digest or hashlib.sha256()

    def write(self, block):
        self.digest.update(block)
        return self.fh.write(block)

    def hexdigest(self):
        return self.digest.hexdigest()


def sha256_prefix(path):
    """A sha256 object fed with the bytes already in path (a partial download being resumed)."""
    digest = hashlib.sha256()
    if os.path.exists(path):
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(BLOCK), b""):
                digest.update(block)
    return digest


def copy_hashed(src, fout):
    """Copy the file src into the open binary file fout; the sha256 of the bytes copied."""
    out = HashingWriter(fout)
    with open(src, "rb") as fin:
        for block in iter(lambda: fin.read(BLOCK), b""):
            out.write(block)
    return out.hexdigest()


def recorded(folder):
    """{name: sha256} recorded in folder/.sha256.json (empty when there is no record)."""
    path = os.path.join(folder, RECORD)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def record(folder, digests):
    """Add {name: sha256} to folder's record (written to a temporary name, then renamed)."""
    from downlink.outputs import write_json

    write_json(os.path.join(folder, RECORD), {**recorded(folder), **digests})
