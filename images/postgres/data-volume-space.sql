-- downlink_ops.data_volume_space(): total and free bytes of the file system holding the data
-- directory, for the hourly health step (images/astro/downlink/health.py), which then needs no
-- mount of the database volume. Run by the entrypoint on every start, as the superuser, in the
-- archive database; idempotent.
--
-- SECURITY DEFINER (COPY FROM PROGRAM needs the superuser): the command is a fixed string (the
-- server's working directory is the data directory), search_path is pinned, the temporary
-- table is created fresh (an existing one, which a caller could have prepared with triggers,
-- makes the call fail), and only the archive role may execute it.
CREATE SCHEMA IF NOT EXISTS downlink_ops AUTHORIZATION postgres;
REVOKE ALL ON SCHEMA downlink_ops FROM PUBLIC;
GRANT USAGE ON SCHEMA downlink_ops TO archive;

CREATE OR REPLACE FUNCTION downlink_ops.data_volume_space(
    OUT total_bytes bigint, OUT free_bytes bigint, OUT mount_point text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fields text[];
    found integer;
BEGIN
    CREATE TEMPORARY TABLE downlink_df_output (line text);
    -- POSIX output (-P) in 1024-byte blocks: a header line, then the file system's line.
    COPY pg_temp.downlink_df_output FROM PROGRAM 'df -Pk -- .'
        WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
    -- Filesystem 1024-blocks Used Available Capacity Mounted-on (names may hold spaces).
    SELECT count(*), min(m) INTO found, fields FROM (
        SELECT regexp_match(line, '^(.*\S)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(/.*)$') AS m
        FROM pg_temp.downlink_df_output) AS parsed WHERE m IS NOT NULL;
    DROP TABLE pg_temp.downlink_df_output;
    IF found <> 1 THEN
        RAISE EXCEPTION 'df -Pk printed % file system lines, expected 1', found;
    END IF;
    total_bytes := fields[2]::bigint * 1024;
    free_bytes := fields[4]::bigint * 1024;  -- available to non-root, as shutil.disk_usage counts
    mount_point := fields[6];
END
$fn$;

ALTER FUNCTION downlink_ops.data_volume_space() OWNER TO postgres;
REVOKE ALL ON FUNCTION downlink_ops.data_volume_space() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION downlink_ops.data_volume_space() TO archive;
