-- Change: several gateways on one database (issue 11). Each run records the gateway that took it
--         (Settings.gateway_name): only that gateway sends, cancels, resumes and finishes it; the
--         others serve it read-only (GetRun, ListRuns, WatchRun).
-- Affects: trade_runs (one NOT NULL column; existing rows get the default name 'execgw', the
--          name every gateway had before, so a single-gateway site resumes its runs as before)
-- Rollback: ALTER TABLE trade_runs DROP COLUMN gateway
-- Idempotent: the ALTER is guarded by information_schema and run as a prepared statement.
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_runs'
    AND COLUMN_NAME = 'gateway'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_runs ADD COLUMN gateway VARCHAR(64) NOT NULL DEFAULT ''execgw'' AFTER finished_at', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
