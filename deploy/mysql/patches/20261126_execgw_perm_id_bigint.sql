-- Change: permIds are 64-bit at IB (widened at API server version 191; values above 2^31 have
--         been seen), so trade_orders.ib_perm_id and trade_fills.ib_perm_id become BIGINT.
--         An INT column refuses such a permId (strict mode) or clips it to 2147483647.
-- Affects: trade_orders (idx_trade_orders_perm is rebuilt by MODIFY), trade_fills
-- Rollback: ALTER TABLE ... MODIFY ib_perm_id INT NULL (only while no permId exceeds 2^31 - 1)
-- Idempotent: MODIFY to the same definition changes nothing.
ALTER TABLE trade_orders MODIFY ib_perm_id BIGINT NULL;
ALTER TABLE trade_fills MODIFY ib_perm_id BIGINT NULL;
