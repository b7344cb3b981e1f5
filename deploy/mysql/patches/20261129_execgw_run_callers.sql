-- Change: who submitted and cancelled a run. submitted_by now holds the authenticated caller's
--         name (issue 10); what a request's submitted_by field said is kept as submitted_note;
--         submitted_from is the caller's address (the gRPC peer); cancelled_by / cancelled_at
--         record the cancel that ended a running run.
-- Affects: trade_runs (four NULL columns added; existing rows keep their values, new columns NULL)
-- Rollback: ALTER TABLE trade_runs DROP COLUMN submitted_note, DROP COLUMN submitted_from,
--           DROP COLUMN cancelled_by, DROP COLUMN cancelled_at
-- Idempotent: every ALTER is guarded by information_schema and run as a prepared statement.

-- submitted_note: the request's free-text submitted_by
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_runs'
    AND COLUMN_NAME = 'submitted_note'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_runs ADD COLUMN submitted_note VARCHAR(128) NULL AFTER submitted_by', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- submitted_from: the caller's gRPC peer address
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_runs'
    AND COLUMN_NAME = 'submitted_from'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_runs ADD COLUMN submitted_from VARCHAR(255) NULL AFTER submitted_note', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- cancelled_by: the caller whose cancel ended the running run
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_runs'
    AND COLUMN_NAME = 'cancelled_by'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_runs ADD COLUMN cancelled_by VARCHAR(128) NULL AFTER submitted_from', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- cancelled_at: when (UTC)
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_runs'
    AND COLUMN_NAME = 'cancelled_at'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_runs ADD COLUMN cancelled_at DATETIME(6) NULL AFTER cancelled_by', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
