# shellcheck shell=bash
# The gateway's MariaDB accounts, made on the first start of an empty data volume.
#
# Mounted by deploy/compose.yaml into the mariadb image's /docker-entrypoint-initdb.d, whose
# entrypoint *sources* it (it must not be executable there) with the server up on its socket:
# docker_process_sql is the entrypoint's own function. It runs deploy/mysql/grants.sql with the
# names below and the passwords of the compose secrets, so the database holds the two least
# privileged accounts and no other (the image's MARIADB_USER would get ALL on the database).
#
# The passwords go to the server as hex: whatever characters they hold, there is no quoting to
# get wrong, and they never appear on a command line. Line ends in the files are not part of them,
# as for the gateway's EXECGW_DATABASE_PASSWORD_FILE.

execgw_database=execgw
execgw_runtime_user=execgw
execgw_migration_user=execgw_migrate

execgw_secret_hex() {
	tr -d '\r\n' <"$1" | od -An -v -tx1 | tr -d ' \n'
}

{
	printf "SET @execgw_database = '%s', @execgw_client_host = '%%';\n" "$execgw_database"
	printf "SET @execgw_runtime_user = '%s', @execgw_runtime_password = CONVERT(UNHEX('%s') USING utf8mb4);\n" \
		"$execgw_runtime_user" "$(execgw_secret_hex /run/secrets/db_password)"
	printf "SET @execgw_migration_user = '%s', @execgw_migration_password = CONVERT(UNHEX('%s') USING utf8mb4);\n" \
		"$execgw_migration_user" "$(execgw_secret_hex /run/secrets/db_migrate_password)"
	cat /etc/execgw/grants.sql
} | docker_process_sql
