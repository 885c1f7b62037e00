"""What every benchmark module shares: the image tag, docker helpers, a throwaway Postgres,
medians, and writing build/bench/<name>.json in the contract's shape (tools/bench/README.md)."""
import argparse
import atexit
import datetime
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "build", "bench-data")


def image_tag():
    return os.environ.get("DOWNLINK_TAG") or subprocess.check_output([os.path.join(ROOT, "tools", "image-tag.sh")],
                                                                     text=True).strip()


def sh(cmd, check=True, capture=True, **kw):
    """Run a command (a list); its stdout as text. A failure names the command and shows its stderr."""
    res = subprocess.run(cmd, text=True, stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        raise SystemExit(f"bench: command failed ({res.returncode}): {' '.join(cmd)}\n{(res.stderr or '')[-3000:]}")
    return res.stdout if capture else ""


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "bench"), help="where <name>.json goes")
    p.add_argument("--keep-data", action="store_true", help="keep the generated data in build/bench-data")
    return p.parse_args()


def median(values):
    return statistics.median(values)


class Cleanup:
    """Things to undo at the end, also on Ctrl-C or SIGTERM: containers, networks, data folders."""

    def __init__(self):
        self.actions = []
        atexit.register(self.run)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._signal)

    def _signal(self, signum, _frame):
        self.run()
        sys.exit(128 + signum)

    def add(self, action):
        self.actions.append(action)

    def run(self):
        while self.actions:
            try:
                self.actions.pop()()
            except Exception as exc:  # noqa: BLE001 - cleanup goes on
                print(f"bench: cleanup: {exc}", file=sys.stderr)


def data_dir(name, cleanup, keep=False):
    """build/bench-data/<name>, fresh; deleted at the end unless keep."""
    path = os.path.join(DATA, name)
    wipe(path)
    os.makedirs(path)
    if not keep:
        cleanup.add(lambda: wipe(path))
    return path


def wipe(path):
    """Delete a folder; files written by containers (uid astro) are removed by root on the host, else by a container."""
    if not os.path.exists(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        sh(["docker", "run", "--rm", "--network", "none", "-u", "0", "-v", f"{os.path.dirname(path)}:/p",
            f"downlink/astro:{image_tag()}", "rm", "-rf", f"/p/{os.path.basename(path)}"])


def postgres(name, cleanup):
    """A throwaway Postgres of the project's image on its own internal network, torn down at the end.
    Returns (network, dsn as seen from containers on that network, container name)."""
    project = f"downlink-bench-{name}"
    net, pg = f"{project}-net", f"{project}-postgres"
    for old in (["docker", "rm", "-f", "-v", pg], ["docker", "network", "rm", net]):
        sh(old, check=False)
    sh(["docker", "network", "create", "--internal", "--label", f"com.docker.compose.project={project}", net])
    cleanup.add(lambda: sh(["docker", "network", "rm", net], check=False))
    password = secrets.token_hex(12)
    sh(["docker", "run", "-d", "--name", pg, "--network", net, "--label", f"com.docker.compose.project={project}",
        "-e", f"AIRFLOW_DB_PASSWORD={secrets.token_hex(12)}", "-e", f"ARCHIVE_DB_PASSWORD={password}",
        f"downlink/postgres:{image_tag()}"])
    cleanup.add(lambda: sh(["docker", "rm", "-f", "-v", pg], check=False))
    deadline = time.time() + 120
    # TCP comes up only after the first start's initdb (which listens on the socket alone).
    while subprocess.run(["docker", "exec", pg, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"],
                         capture_output=True).returncode != 0:
        if time.time() > deadline:
            raise SystemExit(f"bench: {pg} did not become ready:\n" + sh(["docker", "logs", pg], check=False))
        time.sleep(1)
    return net, f"postgresql://archive:{password}@{pg}:5432/archive", pg


def psql(pg, sql):
    return sh(["docker", "exec", pg, "psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "archive", "-c", sql])


def save_plot(fig, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)


# The plot of each stack benchmark, drawn from its first table (the per-repetition figures), so the
# page shows every repetition and not only the median.
TABLE_PLOTS = {
    "overhead": ("Total seconds of the 10-step chain, each repetition", "seconds"),
    "latency": ("Arrival latency: publish to row in Postgres, each arrival", "seconds"),
    "footprint": ("Idle memory per container", "MiB"),
}


def table_plot(result):
    """Bars of the result's first table (rows but 'median'/'total'), saved as docs/bench/<name>.png
    and listed in result['plots']. Needs matplotlib (the bench venv has it)."""
    if result["name"] not in TABLE_PLOTS or not result.get("tables"):
        return result
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, unit = TABLE_PLOTS[result["name"]]
    table = result["tables"][0]
    rows = [r for r in table["rows"] if str(r[0]).lower() not in ("median", "total")]
    columns = table["columns"][1:]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(columns)
    for k, column in enumerate(columns):
        values = [float(str(r[k + 1]).replace(",", "")) for r in rows]
        ax.bar([i + k * width for i in range(len(rows))], values, width, label=column)
    ax.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(rows))], [str(r[0]) for r in rows],
                  fontsize=8, rotation=0 if len(rows) < 9 else 30)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(columns) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(ROOT, "docs", "bench", f"{result['name']}.png")
    save_plot(fig, path)
    plt.close(fig)
    result["plots"] = [os.path.relpath(path, ROOT)]
    return result


def write_result(out_dir, result, started):
    os.makedirs(out_dir, exist_ok=True)
    table_plot(result)
    result["measured_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["seconds"] = round(time.time() - started, 1)
    path = os.path.join(out_dir, f"{result['name']}.json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"bench: wrote {os.path.relpath(path, ROOT)} ({result['seconds']} s)")
    return path


def loadavg():
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])
