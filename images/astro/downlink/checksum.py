"""SHA-256 of files, read in blocks (raw frames can be large), and the record of digests already
computed so that no later step reads the bytes again only to hash them.

The download step hashes each file while it writes it, checks it against the manifest, and records
what it verified in staging/<night>/.staged.json: each staged file's sha256 with the file's
identity (inode, size, modification time in ns). The archive step copies a staged file whose
identity is unchanged without reading it in Python (the kernel copies it, see archive.py), and
hashes any other as it copies it; it records every archived file's digest in
raw/<night>/.sha256.json (the archive is read-only to every other step and never rewritten, so the
record stays true); the index step reads the digests from there.
"""
import hashlib
import json
import os

BLOCK = 1 << 20
RECORD = ".sha256.json"
STAGED = ".staged.json"


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
    return load_json(os.path.join(folder, RECORD))


def record(folder, digests):
    """Add {name: sha256} to folder's record (written to a temporary name, then renamed)."""
    from downlink.outputs import write_json

    write_json(os.path.join(folder, RECORD), {**recorded(folder), **digests})


def identity(path):
    """What changes when a file is replaced or written to: inode, size, mtime (ns)."""
    st = os.stat(path)
    return {"ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remember_staged(folder, verified):
    """Add {name: sha256} of files just verified in folder to its .staged.json, with their identity."""
    from downlink.outputs import write_json

    path = os.path.join(folder, STAGED)
    held = load_json(path)
    held.update({name: {"sha256": digest, **identity(os.path.join(folder, name))} for name, digest in verified.items()})
    write_json(path, held)


def forget_staged(folder):
    """Drop from folder's .staged.json the files no longer staged (archived, quarantined)."""
    from downlink.outputs import write_json

    path = os.path.join(folder, STAGED)
    held = load_json(path)
    kept = {n: e for n, e in held.items() if os.path.exists(os.path.join(folder, n))}
    if kept != held:
        write_json(path, kept)


def staged_records(folder):
    """{name: {"sha256", "ino", "size", "mtime_ns"}} the download step recorded in folder."""
    return load_json(os.path.join(folder, STAGED))


def staged_digest(folder, name, staged=None):
    """The sha256 the download step verified for folder/name, if the file is still the one it
    verified (same identity), else None. staged: staged_records(folder), read once by the caller."""
    entry = (staged_records(folder) if staged is None else staged).get(name)
    try:
        current = identity(os.path.join(folder, name))
    except FileNotFoundError:
        return None
    if not entry or any(entry.get(k) != v for k, v in current.items()):
        return None
    return entry["sha256"]


def load_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)
