-- Change: run ids compare exactly (utf8mb4_bin) on MySQL too, as they do on SQLite and in the
--         engine: trade_runs.id and every column that refers to it (trade_orders.run_id,
--         trade_events.run_id). Under the table collation an upper-cased run id found the run in
--         the database while the engine, which keys runs by the exact string, did not know it.
--         utf8mb4_bin still ignores trailing spaces (PAD SPACE); the API refuses any run id that
--         is not the canonical lower-case UUID, so none reaches a query.
-- Affects: trade_runs, trade_orders, trade_events. MySQL/MariaDB refuse to change the collation
--          of a column a foreign key uses (error 1833), so fk_trade_orders_run and
--          fk_trade_events_run are dropped, the three columns modified, and both keys re-added.
-- Rollback: the same steps with VARCHAR(36) NOT NULL (table collation).
-- Idempotent: each DROP / ADD is guarded by information_schema (as in 20261124); MODIFY to the
--             same definition changes nothing.

-- 1) drop the foreign keys that pin the collation
SET @fk_exists := (
  SELECT COUNT(1) FROM information_schema.TABLE_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_orders'
    AND CONSTRAINT_NAME = 'fk_trade_orders_run'
    AND CONSTRAINT_TYPE = 'FOREIGN KEY'
);
SET @sql := IF(@fk_exists = 1, 'ALTER TABLE trade_orders DROP FOREIGN KEY fk_trade_orders_run', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

SET @fk_exists := (
  SELECT COUNT(1) FROM information_schema.TABLE_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_events'
    AND CONSTRAINT_NAME = 'fk_trade_events_run'
    AND CONSTRAINT_TYPE = 'FOREIGN KEY'
);
SET @sql := IF(@fk_exists = 1, 'ALTER TABLE trade_events DROP FOREIGN KEY fk_trade_events_run', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- 2) the run id columns, binary collation
ALTER TABLE trade_runs MODIFY id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE trade_orders MODIFY run_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE trade_events MODIFY run_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- 3) the foreign keys again (idx_trade_orders_run and uq_trade_events_run_sequence serve them)
SET @fk_exists := (
  SELECT COUNT(1) FROM information_schema.TABLE_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_orders'
    AND CONSTRAINT_NAME = 'fk_trade_orders_run'
    AND CONSTRAINT_TYPE = 'FOREIGN KEY'
);
SET @sql := IF(@fk_exists = 0, 'ALTER TABLE trade_orders ADD CONSTRAINT fk_trade_orders_run FOREIGN KEY (run_id) REFERENCES trade_runs (id)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

SET @fk_exists := (
  SELECT COUNT(1) FROM information_schema.TABLE_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_events'
    AND CONSTRAINT_NAME = 'fk_trade_events_run'
    AND CONSTRAINT_TYPE = 'FOREIGN KEY'
);
SET @sql := IF(@fk_exists = 0, 'ALTER TABLE trade_events ADD CONSTRAINT fk_trade_events_run FOREIGN KEY (run_id) REFERENCES trade_runs (id)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
