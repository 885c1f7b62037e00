"""SHA-256 of files, read in blocks (raw frames can be large)."""
import hashlib

BLOCK = 1 << 20


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
