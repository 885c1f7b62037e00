"""Writing step outputs safely: parent folders created, files replaced atomically (a crash never
leaves a half-written file where the next step would read it)."""
import json
import os
import tempfile


def write_json(path, obj):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are read by other services (e.g. the archive server)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
