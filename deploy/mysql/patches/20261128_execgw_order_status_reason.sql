-- Change: trade_orders.rejected_reason becomes status_reason. It never held only IB's rejections:
--         cancel reasons, withdrawals ("withdrawn: the run ended before it was sent"), and why an
--         order is UNKNOWN are there too. The API field (OrderState.status_reason) follows.
-- Affects: trade_orders (a rename; the data stays)
-- Rollback: ALTER TABLE trade_orders CHANGE COLUMN status_reason rejected_reason TEXT NULL
-- Idempotent: guarded by information_schema: renamed only while the old name exists.
SET @col_exists := (
  SELECT COUNT(1) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE()
    AND TABLE_NAME = 'trade_orders'
    AND COLUMN_NAME = 'rejected_reason'
);
SET @sql := IF(@col_exists = 1, 'ALTER TABLE trade_orders CHANGE COLUMN rejected_reason status_reason TEXT NULL', 'SELECT 1');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
