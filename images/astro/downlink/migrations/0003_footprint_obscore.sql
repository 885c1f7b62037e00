-- Issue 14: what the index learns from real-world headers, the footprint, and an IVOA ObsCore view.
-- (q3c and pg_sphere are created in the archive database by the postgres image's first start.)

ALTER TABLE observations
    ADD COLUMN date_end       timestamptz,      -- end of exposure, UTC (DATE-END, MJD-END, TSTOP, or start + exptime)
    ADD COLUMN date_precision text              -- 'time', or 'day': the header gives the date only
        CHECK (date_precision IN ('time', 'day')),
    ADD COLUMN native_frame   text,             -- the frame as written: icrs, fk5 J2000.000, fk4 B1950.000, galactic, ...
                                                -- or the axis types of a WCS that is not on the sky (HPLN-TAN/HPLT-TAN)
    ADD COLUMN s_region       spoly,            -- footprint: the pixel grid's corners in ICRS (pgSphere polygon)
    ADD COLUMN s_fov          double precision; -- degrees: the larger diagonal of the footprint

COMMENT ON COLUMN observations.ra IS 'degrees, ICRS, frame centre (from a celestial WCS or pointing keywords)';
COMMENT ON COLUMN observations.s_region IS 'footprint in ICRS: spoly of the pixel grid corners (fitssky.py)';

-- "Which frames contain this position": s_region @> spoint, through this index.
CREATE INDEX observations_s_region ON observations USING gist (s_region);
-- Time ranges: start, and the [start, end] interval (overlap queries: t_range && tstzrange(a, b)).
-- NULL when the start is unknown (tstzrange(NULL, NULL) would be all of time and match every query).
ALTER TABLE observations ADD COLUMN t_range tstzrange GENERATED ALWAYS AS
    (CASE WHEN date_obs IS NOT NULL THEN tstzrange(date_obs, greatest(date_obs, date_end), '[]') END) STORED;
CREATE INDEX observations_date_obs ON observations (date_obs);
CREATE INDEX observations_t_range ON observations USING gist (t_range);
-- Header look-ups by key and value: header @> '[{"cards": {"INSTRUME": "ACIS"}}]'.
CREATE INDEX observations_header ON observations USING gin (header jsonb_path_ops);

-- The index as IVOA ObsCore 1.1 (standard column names and units: degrees, MJD, seconds, kbyte).
-- Unknown quantities (spectral, polarisation, resolution) are typed NULLs, as the standard allows.
CREATE SCHEMA IF NOT EXISTS ivoa;
CREATE VIEW ivoa.obscore AS
SELECT
    CASE WHEN o.naxis1 IS NOT NULL THEN 'image' END::text          AS dataproduct_type,
    1::smallint                                                     AS calib_level,  -- raw, standard format (FITS)
    'downlink/raw'::text                                            AS obs_collection,
    o.path::text                                                    AS obs_id,
    ('ivo://downlink/raw?' || o.path)::text                          AS obs_publisher_did,
    o.path::text                                                    AS access_url,    -- relative to the data root
    CASE WHEN o.filename ~* '\.gz$' THEN 'application/x-gzip' ELSE 'application/fits' END::text AS access_format,
    ceil(o.size_bytes / 1024.0)::bigint                             AS access_estsize, -- kbyte
    o.object::text                                                  AS target_name,
    o.ra                                                            AS s_ra,          -- deg, ICRS
    o.dec                                                           AS s_dec,         -- deg, ICRS
    o.s_fov                                                         AS s_fov,         -- deg
    o.s_region                                                      AS s_region,      -- spoly, ICRS
    NULL::double precision                                          AS s_resolution,
    o.naxis1::bigint                                                AS s_xel1,
    o.naxis2::bigint                                                AS s_xel2,
    o.mjd                                                           AS t_min,         -- MJD (UTC)
    CASE WHEN o.date_precision = 'day' THEN o.mjd + 1
         WHEN o.date_end IS NOT NULL THEN o.mjd + extract(epoch FROM o.date_end - o.date_obs)::double precision / 86400
         ELSE o.mjd END                                             AS t_max,         -- MJD (UTC)
    o.exptime                                                       AS t_exptime,     -- s
    NULL::double precision                                          AS t_resolution,
    NULL::bigint                                                    AS t_xel,
    NULL::double precision                                          AS em_min,
    NULL::double precision                                          AS em_max,
    NULL::double precision                                          AS em_res_power,
    NULL::bigint                                                    AS em_xel,
    NULL::text                                                      AS o_ucd,
    NULL::text                                                      AS pol_states,
    NULL::bigint                                                    AS pol_xel,
    o.telescope::text                                               AS facility_name,
    o.instrument::text                                              AS instrument_name,
    -- Downlink's own columns (ObsCore allows more)
    o.night                                                         AS night,
    o.imagetyp                                                      AS imagetyp,
    o.filter                                                        AS filter,
    o.native_frame                                                  AS native_frame,
    o.date_precision                                                AS date_precision
FROM observations o;
