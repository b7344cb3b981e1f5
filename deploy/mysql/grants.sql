-- The gateway's two MySQL / MariaDB accounts, each with only what it needs.
--
--   runtime account    (`execgw serve`):      SELECT, INSERT, UPDATE on the gateway's database.
--                      Several gateways on one database need nothing more: each claims its name in
--                      the `gateways` registry with INSERT, keeps and finally releases the claim with
--                      UPDATE (a row is taken over, never deleted), and reads the others' runs.
--                      The gateway never deletes (runs, orders, fills and events are its ledger) and
--                      never changes the schema at run time: `serve` runs the upgrade at start, which
--                      with every migration applied only reads schema_migrations. A credential
--                      stolen from a running gateway can therefore neither erase history nor alter
--                      or drop a table. A release with a new patch needs `execgw db upgrade` with the
--                      migration account first; until then `serve` stops at start, refused the DDL.
--   migration account  (`execgw db upgrade`): what deploy/mysql/base and patches need, no more:
--                      CREATE (tables), ALTER (columns, keys, collations, foreign keys), REFERENCES
--                      (MySQL 8.0.22+ asks for it on the parent table of a foreign key), SELECT
--                      (information_schema guards, schema_migrations), INSERT (schema_migrations),
--                      UPDATE (a patch backfills a column). No DROP and no DELETE: no migration drops
--                      or deletes anything; a patch that must would add the privilege here, and
--                      tests/deploy/test_mysql_grants.py, which migrates with exactly these grants,
--                      fails until it does.
--
-- Idempotent and declarative: the accounts are created if missing, their passwords set, every other
-- privilege they held (on any database) revoked, then the ones above granted. So the accounts must
-- be the gateway's own, and re-running this after a broader GRANT narrows them again.
--
-- Apply as an administrator, with the names and passwords set first in the same session. Nothing
-- here is a secret: the passwords come from the session variables, never from this file.
--
--   mariadb --user=root --password <<'SQL'      # or `mysql`; a script reading stdin keeps them off `ps`
--   SET @execgw_database = 'execgw', @execgw_client_host = '%',
--       @execgw_runtime_user = 'execgw', @execgw_runtime_password = '...',
--       @execgw_migration_user = 'execgw_migrate', @execgw_migration_password = '...';
--   SOURCE deploy/mysql/grants.sql
--   SQL
--
-- deploy/compose/mariadb-init.sh does exactly that from the compose file's secrets.
--
-- Every statement is built and run as a prepared statement, as the patches do with their guarded
-- ALTERs: account and database names cannot be session variables in plain SQL. QUOTE() makes
-- each name and password a string literal; the database name is a backquoted identifier.

-- 0) Stop at once, naming what is missing, when a variable is unset or empty: without this a
--    NULL name would become the bare word NULL in the statements below. The server refuses to
--    prepare the sentence (a syntax error that quotes it) and the client stops at that error.
SET @execgw_missing := CONCAT_WS(', ',
  IF(COALESCE(@execgw_database, '') = '', '@execgw_database', NULL),
  IF(COALESCE(@execgw_client_host, '') = '', '@execgw_client_host', NULL),
  IF(COALESCE(@execgw_runtime_user, '') = '', '@execgw_runtime_user', NULL),
  IF(COALESCE(@execgw_runtime_password, '') = '', '@execgw_runtime_password', NULL),
  IF(COALESCE(@execgw_migration_user, '') = '', '@execgw_migration_user', NULL),
  IF(COALESCE(@execgw_migration_password, '') = '', '@execgw_migration_password', NULL));
SET @sql := IF(@execgw_missing = '', 'SELECT 1',
               CONCAT('deploy/mysql/grants.sql needs these set first: ', @execgw_missing));
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- NULL unless everything is set, so that a client which goes on after an error (`SOURCE` from
-- `mariadb -e` does) fails every statement below as well instead of creating an account with an
-- empty password.
SET @execgw_db := IF(@execgw_missing = '', CONCAT('`', REPLACE(@execgw_database, '`', '``'), '`'), NULL);
SET @execgw_runtime := IF(@execgw_missing = '',
                          CONCAT(QUOTE(@execgw_runtime_user), '@', QUOTE(@execgw_client_host)), NULL);
SET @execgw_migration := IF(@execgw_missing = '',
                            CONCAT(QUOTE(@execgw_migration_user), '@', QUOTE(@execgw_client_host)), NULL);

-- 1) the database (utf8mb4: the schema's tables are, and symbols and reasons may be any text)
SET @sql := CONCAT('CREATE DATABASE IF NOT EXISTS ', @execgw_db, ' CHARACTER SET utf8mb4');
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- 2) the runtime account
SET @sql := CONCAT('CREATE USER IF NOT EXISTS ', @execgw_runtime, ' IDENTIFIED BY ', QUOTE(@execgw_runtime_password));
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
-- An existing account gets the password given now (rotation is: change the secret, re-run this).
SET @sql := CONCAT('ALTER USER ', @execgw_runtime, ' IDENTIFIED BY ', QUOTE(@execgw_runtime_password));
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @sql := CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', @execgw_runtime);
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @sql := CONCAT('GRANT SELECT, INSERT, UPDATE ON ', @execgw_db, '.* TO ', @execgw_runtime);
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- 3) the migration account
SET @sql := CONCAT('CREATE USER IF NOT EXISTS ', @execgw_migration, ' IDENTIFIED BY ', QUOTE(@execgw_migration_password));
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @sql := CONCAT('ALTER USER ', @execgw_migration, ' IDENTIFIED BY ', QUOTE(@execgw_migration_password));
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @sql := CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', @execgw_migration);
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @sql := CONCAT('GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, REFERENCES ON ', @execgw_db, '.* TO ', @execgw_migration);
PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;

-- The passwords stay in this session's variables until it ends: forget them now.
SET @execgw_runtime_password := NULL, @execgw_migration_password := NULL, @sql := NULL;
