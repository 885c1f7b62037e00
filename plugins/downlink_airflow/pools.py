"""The Airflow pools Downlink's DAGs use, declared in one file (dags/pools.json, in the format of
`airflow pools import`) and imported by airflow-init on every start. DOWNLINK_HEAVY_SLOTS, when
set, overrides the slots of the `heavy` pool.

    python -m downlink_airflow.pools dags/pools.json OUT.json   # the file to import, overrides applied
"""
import json
import sys

from downlink_airflow.config import Settings, slots

HEAVY = "heavy"


def declared(path, settings=None):
    """{pool: {"slots", "description", "include_deferred"}} from the file, with the overrides."""
    settings = settings or Settings.from_env()
    with open(path, encoding="utf-8") as fh:
        pools = json.load(fh)
    for name, pool in pools.items():
        if not (isinstance(pool, dict) and isinstance(pool.get("slots"), int) and pool["slots"] >= 0
                and isinstance(pool.get("description"), str)):
            raise ValueError(f"{path}: pool {name!r} needs slots (a whole number >= 0) and a description")
    heavy = slots(settings.heavy_slots, "DOWNLINK_HEAVY_SLOTS")
    if heavy is not None:
        if HEAVY not in pools:
            raise ValueError(f"{path}: no pool {HEAVY!r} for DOWNLINK_HEAVY_SLOTS")
        pools[HEAVY] = {**pools[HEAVY], "slots": heavy}
    return pools


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    pools = declared(argv[0])
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(pools, fh, indent=2)
    print(", ".join(f"pool {name} has {pool['slots']} slot(s)" for name, pool in pools.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
