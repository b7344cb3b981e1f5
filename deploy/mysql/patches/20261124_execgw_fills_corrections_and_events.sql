-- Change: execution corrections and the extra IB execution fields on trade_fills; the unique IB
--         order id of trade_orders; the trade_events table (the per-run log WatchRun replays from)
-- Affects: trade_fills / trade_orders / trade_events
-- Rollback: drop trade_events, the added trade_fills columns, indexes and foreign key, and
--           uq_trade_orders_ib_order / idx_trade_orders_perm
-- Written like 20260123: every ALTER is guarded by information_schema and run as a prepared
-- statement, so the file is idempotent on MySQL 8 and MariaDB alike (no ADD COLUMN IF NOT EXISTS).

-- 1) trade_fills columns
-- exec_base: execId without its last dot-part: a correction ...01.02 shares the base of ...01.01
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'exec_base'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN exec_base VARCHAR(64) NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- superseded_by: exec_id of the correction that replaced this execution (NULL = current)
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'superseded_by'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN superseded_by VARCHAR(64) NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- side
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'side'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN side VARCHAR(4) NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- account
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'account'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN account VARCHAR(32) NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- ib_perm_id
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'ib_perm_id'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN ib_perm_id INT NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- commission_currency
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'commission_currency'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN commission_currency VARCHAR(8) NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- realized_pnl
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND COLUMN_NAME = 'realized_pnl'
);
SET @sql := IF(@col_exists = 0, 'ALTER TABLE trade_fills ADD COLUMN realized_pnl DOUBLE NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- Backfill exec_base of fills written before this patch (same rule as models.execution_base).
UPDATE trade_fills
SET exec_base = IF(LOCATE('.', exec_id) = 0, exec_id,
                   LEFT(exec_id, CHAR_LENGTH(exec_id) - CHAR_LENGTH(SUBSTRING_INDEX(exec_id, '.', -1)) - 1))
WHERE exec_base IS NULL;

-- 2) trade_fills indexes and foreign key
-- idx_trade_fills_exec_base: finds the execution a correction replaces
SET @idx_exists := (
  SELECT COUNT(1) FROM information_schema.STATISTICS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND INDEX_NAME = 'idx_trade_fills_exec_base'
);
SET @sql := IF(@idx_exists = 0, 'ALTER TABLE trade_fills ADD KEY idx_trade_fills_exec_base (exec_base)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- fk_trade_fills_order: the seed left order_id unchecked; idx_trade_fills_order serves it
SET @fk_exists := (
  SELECT COUNT(1) FROM information_schema.TABLE_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_fills'
    AND CONSTRAINT_NAME = 'fk_trade_fills_order'
    AND CONSTRAINT_TYPE = 'FOREIGN KEY'
);
SET @sql := IF(@fk_exists = 0, 'ALTER TABLE trade_fills ADD CONSTRAINT fk_trade_fills_order FOREIGN KEY (order_id) REFERENCES trade_orders (id)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- 3) trade_orders indexes
-- uq_trade_orders_ib_order: IB never reuses an order id per endpoint and client id
SET @idx_exists := (
  SELECT COUNT(1) FROM information_schema.STATISTICS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_orders'
    AND INDEX_NAME = 'uq_trade_orders_ib_order'
);
SET @sql := IF(@idx_exists = 0, 'ALTER TABLE trade_orders ADD UNIQUE KEY uq_trade_orders_ib_order (ib_endpoint, ib_client_id, ib_order_id)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- idx_trade_orders_perm: executions map to orders by permId when orderRef is missing
SET @idx_exists := (
  SELECT COUNT(1) FROM information_schema.STATISTICS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_orders'
    AND INDEX_NAME = 'idx_trade_orders_perm'
);
SET @sql := IF(@idx_exists = 0, 'ALTER TABLE trade_orders ADD KEY idx_trade_orders_perm (ib_perm_id)', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- 4) trade_events: sequence counts 1, 2, 3... within a run (trade_runs.last_sequence is the last one used)
CREATE TABLE IF NOT EXISTS trade_events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(36) NOT NULL,
  `sequence` INT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  order_id INT NULL,
  payload JSON NOT NULL,
  ib_time DATETIME(6) NULL,
  stored_at DATETIME(6) NOT NULL,
  UNIQUE KEY uq_trade_events_run_sequence (run_id, `sequence`),
  CONSTRAINT fk_trade_events_run FOREIGN KEY (run_id) REFERENCES trade_runs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
