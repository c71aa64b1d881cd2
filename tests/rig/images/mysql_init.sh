#!/bin/sh
# Entrypoint of the look-alike db_mysql (Debian's MariaDB), standing in for mysql:8.0's
# docker-entrypoint.sh: on first start initialise the data folder, create MYSQL_DATABASE with
# Dify's credential tables and the test's seed, give root the password MYSQL_ROOT_PASSWORD
# (root@localhost and root@'%', as the mysql image does), then exec the server with the
# upstream command's options (--max_connections=... --innodb_buffer_pool_size=...).
set -eu
DATADIR=/var/lib/mysql
INIT_SOCK=/tmp/rig-init.sock
: "${MYSQL_DATABASE:=dify}" "${MYSQL_ROOT_PASSWORD:?the mysql image refuses to start without it}"
mkdir -p /run/mysqld "$DATADIR"
chown -R mysql:mysql /run/mysqld "$DATADIR"
if [ ! -f "$DATADIR/.rig-initialised" ]; then
  # Debian's package already installed a system database (root by unix socket): start over.
  find "$DATADIR" -mindepth 1 -delete
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  # Temporary server, no TCP and a private socket: the healthcheck (mysqladmin ping on the
  # default socket) stays red until the seed is in.
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$INIT_SOCK" \
    --innodb-flush-log-at-trx-commit=0 >/tmp/rig-init.log 2>&1 &
  pid=$!
  i=0
  until mariadb-admin --socket="$INIT_SOCK" -u root ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 300 ] || { cat /tmp/rig-init.log; exit 1; }; sleep 0.1
  done
  sql() { mariadb --socket="$INIT_SOCK" -u root "$@"; }
  sql -e "CREATE DATABASE \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  sql "$MYSQL_DATABASE" < /rig/schema.sql
  [ -f /rig/seed.sql ] && sql "$MYSQL_DATABASE" < /rig/seed.sql
  # plugin_daemon's database (DB_PLUGIN_DATABASE) in the same server, with its tables
  PLUGIN_DB=${RIG_PLUGIN_DATABASE:-dify_plugin}
  sql -e "CREATE DATABASE \`$PLUGIN_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  [ -f /rig/plugin_schema.sql ] && sql "$PLUGIN_DB" < /rig/plugin_schema.sql
  [ -f /rig/plugin_seed.sql ] && sql "$PLUGIN_DB" < /rig/plugin_seed.sql
  sql -e "ALTER USER 'root'@'localhost' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
          CREATE USER 'root'@'%' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
          GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb-admin --socket="$INIT_SOCK" -u root shutdown
  wait "$pid" || true
  touch "$DATADIR/.rig-initialised"
  echo "MySQL init process done. Ready for start up."
fi
exec mariadbd --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 "$@"
