"""`downlink report --night YYYY-MM-DD`: the nightly summary as a static HTML page with PNG plots.

Writes reports/<night>/index.html, seeing_sky.png (seeing and sky over the night),
thumbnails.png (the reduced science frames) and summary.json. It reads only the database and the
reduced frames, so it also reports on a night whose chain failed part-way. The Airflow UI serves it
under /reports/<night>/ ("Nightly reports" in the navigation).
Exit codes: 0 written; 1 failure; 2 bad usage.
"""
import datetime
import html
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.visualization import ZScaleInterval  # noqa: E402

from downlink import db, layout, runinfo  # noqa: E402
from downlink.outputs import write_json  # noqa: E402


def add_parser(sub):
    p = sub.add_parser("report", help="write the nightly HTML report", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def query(conn, sql, night):
    cur = conn.execute(sql, (night,))
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def gather(conn, night):
    return {
        "counts": query(conn, "SELECT coalesce(imagetyp, 'unknown') AS imagetyp, count(*) AS n FROM observations"
                              " WHERE night = %s GROUP BY 1 ORDER BY 1", night),
        "quarantine": query(conn, "SELECT filename, stage, reason FROM quarantine WHERE night = %s"
                                  " ORDER BY stage, filename", night),
        "masters": query(conn, "SELECT kind, filter, instrument, n_inputs, path FROM calibration_masters"
                               " WHERE night = %s ORDER BY kind, filter", night),
        "frames": query(conn, """
            SELECT o.filename, o.object, o.filter, o.exptime, o.date_obs, o.airmass, r.path,
                   r.noise_raw, r.noise_reduced, array_to_string(r.notes, '; ') AS notes,
                   i.mean AS iraf_mean, i.stddev AS iraf_stddev,
                   q.n_sources, q.fwhm_arcsec, q.sky, q.qc_ok, array_to_string(q.qc_reasons, '; ') AS qc_reasons
            FROM reduced_frames r JOIN observations o USING (obs_id)
            LEFT JOIN iraf_stats i USING (reduced_id) LEFT JOIN frame_qc q USING (reduced_id)
            WHERE r.night = %s ORDER BY o.date_obs, o.filename""", night),
        "diagnostics": query(conn, "SELECT check_name, ok, message FROM diagnostics WHERE night = %s"
                                   " ORDER BY check_name", night),
    }


def plot_seeing_sky(frames, path):
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    timed = [f for f in frames if f["date_obs"] is not None]
    for filt in sorted({f["filter"] or "-" for f in timed}):
        sel = [f for f in timed if (f["filter"] or "-") == filt]
        t = [f["date_obs"] for f in sel]
        ax1.plot(t, [f["fwhm_arcsec"] if f["fwhm_arcsec"] is not None else np.nan for f in sel], "o", label=filt)
        ax2.plot(t, [f["sky"] if f["sky"] is not None else np.nan for f in sel], "s", label=filt)
    ax1.set_ylabel("seeing FWHM (arcsec)")
    ax2.set_ylabel("sky (e-/pixel)")
    ax2.set_xlabel("time (UTC)")
    if timed:
        ax1.legend(title="filter", fontsize="small")
    else:
        ax1.text(0.5, 0.5, "no reduced frames", ha="center", va="center", transform=ax1.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    save_figure(fig, path)


def plot_thumbnails(frames, path):
    n = max(1, len(frames))
    cols = min(6, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, frame in zip(axes.flat, frames):
        data = fits.getdata(os.path.join(layout.data_root(), frame["path"]))
        vmin, vmax = ZScaleInterval().get_limits(data)
        ax.imshow(data, origin="lower", cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(f"{frame['object'] or ''} {frame['filter'] or ''}\n{frame['filename']}", fontsize=6)
    if not frames:
        axes.flat[0].text(0.5, 0.5, "no reduced frames", ha="center", va="center")
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def cell(value, fmt=None):
    if value is None:
        return "<td></td>"
    if fmt and isinstance(value, (int, float)):
        return f"<td>{format(value, fmt)}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def table(rows, columns):
    """An HTML table; columns are (key, heading, format)."""
    if not rows:
        return "<p class='empty'>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = "".join(
        f"<tr{' class=bad' if row.get('qc_ok') is False or row.get('ok') is False else ''}>"
        + "".join(cell(row.get(k), f) for k, _, f in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(night, data):
    n_bad = sum(1 for f in data["frames"] if f["qc_ok"] is False)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Downlink night {night}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }} table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; font-size: 0.9em; text-align: left; }}
tr.bad td {{ background: #fdd; }} .empty {{ color: #888; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Night {night}</h1>
<p>{len(data['frames'])} reduced frames, {n_bad} outside the QC limits, {len(data['quarantine'])} quarantined files.
Generated {generated} by {html.escape(runinfo.code_version())}, run {html.escape(runinfo.run_id())}.</p>
<h2>Frames per type</h2>{table(data['counts'], [('imagetyp', 'type', None), ('n', 'files', None)])}
<h2>Seeing and sky</h2><img src="seeing_sky.png" alt="seeing and sky over the night">
<h2>Reduced science frames</h2>
{table(data['frames'], [('filename', 'file', None), ('object', 'object', None), ('filter', 'filter', None),
                         ('date_obs', 'start (UTC)', None), ('airmass', 'airmass', '.3f'),
                         ('noise_raw', 'noise raw e-', '.1f'), ('noise_reduced', 'noise reduced e-', '.1f'),
                         ('iraf_mean', 'IRAF mean', '.1f'), ('iraf_stddev', 'IRAF stddev', '.1f'),
                         ('n_sources', 'sources', None), ('fwhm_arcsec', 'FWHM "', '.2f'), ('sky', 'sky e-', '.0f'),
                         ('qc_reasons', 'QC', None), ('notes', 'notes', None)])}
<h2>Thumbnails</h2><img src="thumbnails.png" alt="thumbnails of the reduced frames">
<h2>Master calibrations</h2>
{table(data['masters'], [('kind', 'kind', None), ('filter', 'filter', None), ('instrument', 'instrument', None),
                          ('n_inputs', 'frames', None), ('path', 'file', None)])}
<h2>Quarantined files</h2>
{table(data['quarantine'], [('filename', 'file', None), ('stage', 'stage', None), ('reason', 'reason', None)])}
<h2>Diagnostics</h2>
{table(data['diagnostics'], [('check_name', 'check', None), ('ok', 'ok', None), ('message', 'result', None)])}
</body></html>
"""


def run(args):
    night = layout.parse_night(args.night)
    with db.connect() as conn:
        data = gather(conn, night)
    folder = layout.night_dir("reports", night, create=True)
    plot_seeing_sky(data["frames"], os.path.join(folder, "seeing_sky.png"))
    plot_thumbnails(data["frames"], os.path.join(folder, "thumbnails.png"))
    page = os.path.join(folder, "index.html")
    with open(page + ".tmp", "w") as fh:
        fh.write(render(night, data))
    os.replace(page + ".tmp", page)
    write_json(os.path.join(folder, "summary.json"), {
        "night": str(night), "counts": {r["imagetyp"]: r["n"] for r in data["counts"]},
        "reduced": len(data["frames"]), "qc_failed": sum(1 for f in data["frames"] if f["qc_ok"] is False),
        "quarantined": len(data["quarantine"]), "diagnostics_ok": all(d["ok"] for d in data["diagnostics"]),
        "run_id": runinfo.run_id()})
    print(f"night {night}: report written to {layout.relative(page)}")
    return 0
