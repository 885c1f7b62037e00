-- Issue 18: housekeeping deletes quarantined bytes after DOWNLINK_KEEP_QUARANTINE_DAYS; the row
-- (and the reason record) stay, saying when the bytes went. `path` keeps saying where they were.
ALTER TABLE quarantine ADD COLUMN pruned_at timestamptz;
COMMENT ON COLUMN quarantine.pruned_at IS 'when housekeeping deleted the quarantined bytes (NULL: still kept at path)';
