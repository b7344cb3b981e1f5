-- Base schema: trade_runs and trade_orders as they stood before the seed patch
-- (patches/20260123_trade_fills_and_orders.sql adds trade_fills and the IB id columns of trade_orders).
-- Idempotent: execgw db upgrade records it in schema_migrations, but running it again is harmless.

CREATE TABLE IF NOT EXISTS trade_runs (
  id VARCHAR(36) NOT NULL,
  mode VARCHAR(8) NOT NULL,
  account VARCHAR(32) NULL,
  status VARCHAR(16) NOT NULL,
  status_reason TEXT NULL,
  submitted_by VARCHAR(128) NULL,
  deadline_at DATETIME(6) NULL,
  last_sequence INT NOT NULL DEFAULT 0,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  KEY idx_trade_runs_created (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS trade_orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(36) NOT NULL,
  client_order_id VARCHAR(64) NOT NULL,
  symbol VARCHAR(32) NOT NULL,
  sec_type VARCHAR(8) NOT NULL,
  exchange VARCHAR(32) NOT NULL,
  primary_exchange VARCHAR(32) NULL,
  currency VARCHAR(8) NOT NULL,
  side VARCHAR(4) NOT NULL,
  quantity DOUBLE NOT NULL,
  order_type VARCHAR(8) NOT NULL,
  account VARCHAR(32) NULL,
  status VARCHAR(20) NOT NULL,
  filled_qty DOUBLE NOT NULL DEFAULT 0,
  avg_fill_price DOUBLE NULL,
  ib_endpoint VARCHAR(128) NULL,
  ib_client_id INT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  UNIQUE KEY uq_trade_orders_client_order_id (client_order_id),
  KEY idx_trade_orders_run (run_id),
  CONSTRAINT fk_trade_orders_run FOREIGN KEY (run_id) REFERENCES trade_runs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
