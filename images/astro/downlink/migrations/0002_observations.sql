-- The observation index (inspired by IVOA ObsCore) and the products and checks of the daily chain.

-- One row per archived raw file. Paths are relative to the data root (raw/<night>/<file>).
CREATE TABLE observations (
    obs_id        bigserial PRIMARY KEY,
    path          text NOT NULL UNIQUE,
    filename      text NOT NULL,
    night         date NOT NULL,
    sha256        char(64) NOT NULL,
    size_bytes    bigint NOT NULL,
    instrument    text,
    telescope     text,
    imagetyp      text,             -- normalised: bias, dark, flat, object, or other
    imagetyp_raw  text,             -- as written in the header (IMAGETYP or OBSTYPE)
    object        text,
    filter        text,
    exptime       double precision, -- seconds
    date_obs      timestamptz,      -- start of exposure, UTC
    mjd           double precision,
    ra            double precision, -- degrees (ICRS), frame centre
    dec           double precision,
    coord_source  text,             -- 'wcs' or 'keywords'
    airmass       double precision,
    naxis1        integer,
    naxis2        integer,
    n_ext         integer NOT NULL, -- number of HDUs
    header        jsonb NOT NULL,   -- every HDU's header: [{"hdu": 0, "name": ..., "cards": {...}}]
    notes         text[] NOT NULL DEFAULT '{}',  -- what was normalised or could not be read
    run_id        text,
    indexed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX observations_q3c ON observations (q3c_ang2ipix(ra, dec));
CREATE INDEX observations_night ON observations (night, imagetyp);

-- Files rejected at any stage, with the reason. Keyed so a rerun does not duplicate.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    night        date NOT NULL,
    filename     text NOT NULL,
    stage        text NOT NULL,     -- download, archive or index
    reason       text NOT NULL,
    sha256       text,
    path         text,              -- where the rejected bytes are kept, if anywhere
    run_id       text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (night, filename, stage)
);

-- Master calibration frames, per instrument and frame shape. filter is '' for bias and dark.
CREATE TABLE calibration_masters (
    master_id    bigserial PRIMARY KEY,
    night        date NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('bias', 'dark', 'flat')),
    filter       text NOT NULL DEFAULT '',
    instrument   text NOT NULL DEFAULT '',
    naxis1       integer NOT NULL,
    naxis2       integer NOT NULL,
    path         text NOT NULL UNIQUE,
    sha256       char(64) NOT NULL,
    n_inputs     integer NOT NULL,
    inputs       text[] NOT NULL,   -- paths of the raw frames combined
    method       text NOT NULL,
    code_version text NOT NULL,
    run_id       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (night, kind, filter, instrument, naxis1, naxis2)
);

-- One reduced frame per raw science observation, with its provenance.
CREATE TABLE reduced_frames (
    reduced_id     bigserial PRIMARY KEY,
    obs_id         bigint NOT NULL UNIQUE REFERENCES observations ON DELETE CASCADE,
    night          date NOT NULL,
    path           text NOT NULL UNIQUE,
    sha256         char(64) NOT NULL,
    bias_master_id bigint REFERENCES calibration_masters,
    dark_master_id bigint REFERENCES calibration_masters,
    flat_master_id bigint REFERENCES calibration_masters,
    noise_raw      double precision,  -- robust std. dev. in the noise region, raw frame
    noise_reduced  double precision,  -- the same region after reduction
    notes          text[] NOT NULL DEFAULT '{}',
    code_version   text NOT NULL,
    run_id         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- IRAF imstatistics of each reduced frame (the chain's IRAF step).
CREATE TABLE iraf_stats (
    reduced_id   bigint PRIMARY KEY REFERENCES reduced_frames ON DELETE CASCADE,
    npix         bigint NOT NULL,
    mean         double precision,
    midpt        double precision,
    mode         double precision,
    stddev       double precision,
    min          double precision,
    max          double precision,
    iraf_version text,
    run_id       text,
    measured_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-frame quality control from source extraction.
CREATE TABLE frame_qc (
    reduced_id   bigint PRIMARY KEY REFERENCES reduced_frames ON DELETE CASCADE,
    n_sources    integer NOT NULL,
    fwhm_pix     double precision,
    fwhm_arcsec  double precision,
    sky          double precision,
    qc_ok        boolean NOT NULL,
    qc_reasons   text[] NOT NULL DEFAULT '{}',
    catalog_path text,
    run_id       text,
    measured_at  timestamptz NOT NULL DEFAULT now()
);

-- Results of the diagnostics step, one row per night and check (the latest run wins).
CREATE TABLE diagnostics (
    night        date NOT NULL,
    check_name   text NOT NULL,
    ok           boolean NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    message      text NOT NULL,
    run_id       text,
    checked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (night, check_name)
);
