"""Writing step outputs safely: parent folders created, files replaced atomically (a crash never
leaves a half-written file where the next step would read it)."""
import json
import os

import downlink_data

# Every output file is written through downlink_data.atomic_path (a temporary dotfile, then a rename).
atomic_path = downlink_data.atomic_path
atomic_write = downlink_data.atomic_write


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # 0644: outputs are read by other services (e.g. the archive server)
    downlink_data.atomic_write(path, json.dumps(obj, indent=2), mode=0o644, fsync=True)
