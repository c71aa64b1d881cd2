#!/bin/sh
# Entrypoint of the look-alike db_postgres (Debian's PostgreSQL 15), standing in for the official
# image's docker-entrypoint.sh: initdb with trust on the local socket (so `psql -U postgres -d dify`
# works without a password, as in Dify's db container), create Dify's databases and the
# credential tables, load the test's seed, then exec the upstream command ("postgres -c ...").
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=dify}" "${PGDATA:=/var/lib/postgresql/data/pgdata}"
PLUGIN_DB=${RIG_PLUGIN_DATABASE:-dify_plugin}
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$(dirname "$PGDATA")" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" -A trust --no-sync >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # Temporary server without TCP, on a private socket folder: the healthchecks (pg_isready over
  # TCP, or over the default socket as in Dify 0.x) stay red until the seed is in.
  mkdir -p /tmp/rig-init && chown postgres:postgres /tmp/rig-init
  as_pg pg_ctl -D "$PGDATA" -s -w \
    -o "-c listen_addresses='' -c unix_socket_directories=/tmp/rig-init -c fsync=off" start
  psql() { command psql -X -q -v ON_ERROR_STOP=1 -h /tmp/rig-init -U "$POSTGRES_USER" "$@"; }
  psql -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" -c "CREATE DATABASE \"$PLUGIN_DB\""
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    psql -d postgres -c "ALTER USER \"$POSTGRES_USER\" PASSWORD '$POSTGRES_PASSWORD'"
  fi
  psql -d "$POSTGRES_DB" -f /rig/schema.sql
  [ -f /rig/schema_extra.sql ] && psql -d "$POSTGRES_DB" -f /rig/schema_extra.sql
  [ -f /rig/seed.sql ] && psql -d "$POSTGRES_DB" -f /rig/seed.sql
  # plugin_daemon's own tables (GORM migrates them at its start; the look-alike cannot)
  [ -f /rig/plugin_schema.sql ] && psql -d "$PLUGIN_DB" -f /rig/plugin_schema.sql
  [ -f /rig/plugin_seed.sql ] && psql -d "$PLUGIN_DB" -f /rig/plugin_seed.sql
  as_pg pg_ctl -D "$PGDATA" -s -w -m fast stop
  echo "PostgreSQL init process complete; ready for start up."
fi
[ $# -gt 0 ] || set -- postgres
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@" -D "$PGDATA" \
  -c listen_addresses='*' -c fsync=off -c synchronous_commit=off
