-- Change: trade_orders.client_order_id compares case-sensitively (utf8mb4_bin), as it does on
--         SQLite and at IB (orderRef): "ORD-1" and "ord-1" are two idempotency keys, not one.
-- Affects: trade_orders (uq_trade_orders_client_order_id is rebuilt by MODIFY)
-- Rollback: ALTER TABLE trade_orders MODIFY client_order_id VARCHAR(64) NOT NULL (table collation)
-- Idempotent: MODIFY to the same definition changes nothing.
ALTER TABLE trade_orders MODIFY client_order_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
