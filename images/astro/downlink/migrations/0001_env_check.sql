-- Results of the astro_env_check DAG: IRAF imstatistics of a test image, one row per run and image.
CREATE TABLE env_check_imstat (
    run_id       text NOT NULL,
    image        text NOT NULL,
    npix         bigint NOT NULL,
    mean         double precision,
    midpt        double precision,
    mode         double precision,
    stddev       double precision,
    skew         double precision,
    kurtosis     double precision,
    min          double precision,
    max          double precision,
    iraf_version text,
    measured_at  timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, image)
);
