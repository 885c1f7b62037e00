"""`downlink report --night YYYY-MM-DD`: the nightly summary as a static HTML page with PNG plots.

Writes into reports/<night>/ (each file replaced atomically):
  index.html       frames per image type, quarantined files and why, master calibrations, reduced
                   frames with their notes, IRAF imstatistics, per-frame QC (failures highlighted),
                   diagnostics; self-contained (inline style, no scripts), images linked relatively;
                   from templates/report.html.j2
  seeing_sky.png   seeing (FWHM, arcsec) and sky level over the night, per filter, with the QC limits
  thumbnails.png   the reduced science frames, zscale-stretched
  summary.json     the same counts, machine-readable
It reads only the database and the reduced frames, so it also reports on a night whose chain failed
part-way, and says so where a table is empty. The Airflow UI serves it under /reports/<night>/.
Exit codes: 0 written; 1 failure; 2 bad usage.
"""
import argparse
import datetime
import math
import os
import statistics

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.nddata import block_reduce  # noqa: E402
from astropy.visualization import ZScaleInterval  # noqa: E402

from downlink import db, layout, runinfo, sources  # noqa: E402
from downlink.outputs import atomic_path, atomic_write, write_json  # noqa: E402

THUMBNAIL_PIXELS = 128  # frames are binned to at most this many pixels a side: small PNGs, visible stars
THUMBNAIL_COLUMNS = 6


def add_parser(sub):
    p = sub.add_parser("report", help="write the nightly HTML report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True, help="YYYY-MM-DD")
    return p


def query(conn, sql, night):
    cur = conn.execute(sql, (night,))
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def gather(conn, night):
    """Everything the report shows, as lists of row dicts."""
    conn.execute("SET TIME ZONE 'UTC'")  # times on the page and the plot are UTC
    return {
        "counts": query(conn, "SELECT coalesce(imagetyp, 'unknown') AS imagetyp, count(*) AS n FROM observations"
                              " WHERE night = %s GROUP BY 1 ORDER BY 1", night),
        "quarantine": query(conn, "SELECT filename, stage, reason FROM quarantine WHERE night = %s"
                                  " ORDER BY stage, filename", night),
        "masters": query(conn, "SELECT kind, filter, instrument, naxis1, naxis2, n_inputs, path"
                               " FROM calibration_masters WHERE night = %s ORDER BY kind, filter", night),
        "frames": query(conn, """
            SELECT o.filename, o.object, o.filter, o.exptime, o.date_obs, o.airmass, r.path,
                   r.noise_raw, r.noise_reduced, array_to_string(r.notes, '; ') AS notes,
                   i.npix, i.mean, i.midpt, i.mode, i.stddev, i.min, i.max,
                   q.n_sources, q.fwhm_pix, q.fwhm_arcsec, q.sky, q.qc_ok,
                   array_to_string(q.qc_reasons, '; ') AS qc_reasons
            FROM reduced_frames r JOIN observations o USING (obs_id)
            LEFT JOIN iraf_stats i USING (reduced_id) LEFT JOIN frame_qc q USING (reduced_id)
            WHERE r.night = %s ORDER BY o.date_obs NULLS LAST, o.filename""", night),
        "diagnostics": query(conn, "SELECT check_name, ok, message FROM diagnostics WHERE night = %s"
                                   " ORDER BY check_name", night),
    }


def summarise(night, data):
    """The machine-readable summary (summary.json)."""
    frames = data["frames"]
    measured = [f for f in frames if f["qc_ok"] is not None]
    seeing = [f["fwhm_arcsec"] for f in measured if f["fwhm_arcsec"] is not None]
    return {
        "night": str(night),
        "observations": {r["imagetyp"]: r["n"] for r in data["counts"]},
        "quarantined": len(data["quarantine"]),
        "masters": len(data["masters"]),
        "reduced": len(frames),
        "iraf_measured": sum(1 for f in frames if f["npix"] is not None),
        "qc_measured": len(measured),
        "qc_failed": [f["filename"] for f in measured if not f["qc_ok"]],
        "median_seeing_arcsec": round(statistics.median(seeing), 3) if seeing else None,
        "diagnostics_failed": [d["check_name"] for d in data["diagnostics"] if not d["ok"]],
        "run_id": runinfo.run_id(),
        "code_version": runinfo.code_version(),
    }


def plot_seeing_sky(frames, path, lim):
    """Seeing and sky of the measured frames against time, one marker colour per filter."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    timed = [f for f in frames if f["date_obs"] is not None and f["qc_ok"] is not None]
    for filt in sorted({f["filter"] or "-" for f in timed}):
        sel = [f for f in timed if (f["filter"] or "-") == filt]
        t = [f["date_obs"] for f in sel]
        ax1.plot(t, [np.nan if f["fwhm_arcsec"] is None else f["fwhm_arcsec"] for f in sel], "o", label=filt)
        ax2.plot(t, [np.nan if f["sky"] is None else f["sky"] for f in sel], "s", label=filt)
    if timed:
        ax1.axhline(lim["max_fwhm_arcsec"], color="red", linestyle="--", linewidth=1, label="QC limit")
        ax2.axhline(lim["max_sky"], color="red", linestyle="--", linewidth=1)
        ax1.legend(title="filter", fontsize="small")
        fig.autofmt_xdate()
    else:
        ax1.text(0.5, 0.5, "no QC measurements this night", ha="center", va="center", transform=ax1.transAxes)
    ax1.set_ylabel("seeing FWHM (arcsec)")
    ax2.set_ylabel("sky (e-/pixel)")
    ax2.set_xlabel("start of exposure (UTC)")
    fig.tight_layout()
    save_figure(fig, path)


def thumbnail(path):
    """A reduced frame binned to at most THUMBNAIL_PIXELS a side, or None if it has no readable pixels."""
    try:
        data = fits.getdata(path).astype(np.float32)
    except (OSError, ValueError, IndexError):
        return None
    if not np.isfinite(data).any():
        return None
    factor = max(1, math.ceil(max(data.shape) / THUMBNAIL_PIXELS))
    return block_reduce(data, factor, func=np.mean) if factor > 1 else data


def plot_thumbnails(frames, path):
    """A grid of zscale thumbnails; QC failures and unreadable frames have red titles."""
    cols = min(THUMBNAIL_COLUMNS, max(1, len(frames)))
    rows = max(1, math.ceil(len(frames) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, frame in zip(axes.flat, frames):
        data = thumbnail(os.path.join(layout.data_root(), frame["path"]))
        title = f"{frame['object'] or ''} {frame['filter'] or ''}\n{frame['filename']}"
        if data is None:
            ax.text(0.5, 0.5, "file not readable", ha="center", va="center", transform=ax.transAxes)
        else:
            vmin, vmax = ZScaleInterval().get_limits(data[np.isfinite(data)])
            ax.imshow(data, origin="lower", cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=6, color="red" if data is None or frame["qc_ok"] is False else "black")
    if not frames:
        axes.flat[0].text(0.5, 0.5, "no reduced frames", ha="center", va="center")
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path):
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


FRAME_COLUMNS = [("filename", "file", None), ("object", "object", None), ("filter", "filter", None),
                 ("date_obs", "start (UTC)", "%Y-%m-%d %H:%M:%S"), ("exptime", "exptime s", "g"), ("airmass", "airmass", ".3f"),
                 ("noise_raw", "noise raw e-", ".1f"), ("noise_reduced", "noise reduced e-", ".1f"),
                 ("notes", "notes", None)]
IRAF_COLUMNS = [("filename", "file", None), ("npix", "npix", None), ("mean", "mean", ".1f"), ("midpt", "midpt", ".1f"),
                ("mode", "mode", ".1f"), ("stddev", "stddev", ".2f"), ("min", "min", ".1f"), ("max", "max", ".1f")]
QC_COLUMNS = [("filename", "file", None), ("n_sources", "sources", None), ("fwhm_pix", "FWHM px", ".2f"),
              ("fwhm_arcsec", "FWHM arcsec", ".2f"), ("sky", "sky e-", ".0f"), ("qc_ok", "QC ok", None),
              ("qc_reasons", "why not", None)]


# Autoescaped: values from the database and the FITS headers (OBJECT, file names, reasons) are text.
PAGE = jinja2.Environment(loader=jinja2.PackageLoader("downlink", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
PAGE.filters["formatted"] = lambda value, fmt: format(value, fmt) if fmt else str(value)


def render(night, data, summary, lim):
    frames = data["frames"]
    qc = [f for f in frames if f["qc_ok"] is not None]
    headline = (f"{len(frames)} reduced frames, {len(summary['qc_failed'])} of {len(qc)} measured outside the QC limits"
                if frames else "No frames were reduced this night.")
    return PAGE.get_template("report.html.j2").render(
        night=night, data=data, summary=summary, lim=lim, frames=frames, qc=qc, headline=headline,
        iraf=[f for f in frames if f["npix"] is not None],
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        code_version=runinfo.code_version(), run_id=runinfo.run_id(),
        frame_columns=FRAME_COLUMNS, iraf_columns=IRAF_COLUMNS, qc_columns=QC_COLUMNS)


def write_text(path, text):
    atomic_write(path, text)


def run(args):
    night = layout.parse_night(args.night)
    lim = sources.limits()
    with db.connect() as conn:
        data = gather(conn, night)
    summary = summarise(night, data)
    folder = layout.night_dir("reports", night, create=True)
    plot_seeing_sky(data["frames"], os.path.join(folder, "seeing_sky.png"), lim)
    plot_thumbnails(data["frames"], os.path.join(folder, "thumbnails.png"))
    write_json(os.path.join(folder, "summary.json"), summary)
    page = os.path.join(folder, "index.html")
    write_text(page, render(night, data, summary, lim))
    print(f"night {night}: {summary['reduced']} reduced frames, {len(summary['qc_failed'])} failed QC;"
          f" report written to {layout.relative(page)}")
    return 0
