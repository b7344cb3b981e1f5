-- Change: the registry of live gateways (issue 11). One row per gateway name, refreshed by the
--         gateway's heartbeat: a second process started with a name a live one holds refuses to
--         start (both would resume the same runs). A gateway that stops in order sets stopped_at.
--         The runtime account needs nothing new: it claims and refreshes rows with INSERT and
--         UPDATE and never deletes one.
-- Affects: a new table gateways; no existing table changes
-- Rollback: DROP TABLE gateways
-- Idempotent: CREATE TABLE IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS gateways (
  name VARCHAR(64) NOT NULL,
  instance CHAR(32) NOT NULL,
  address VARCHAR(255) NULL,
  host VARCHAR(255) NOT NULL,
  pid INT NOT NULL,
  started_at DATETIME(6) NOT NULL,
  seen_at DATETIME(6) NOT NULL,
  stopped_at DATETIME(6) NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
