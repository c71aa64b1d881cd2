#!/bin/sh
# Look-alike plugin_daemon (busybox only: sh, wget, httpd; no curl, no python).
# Serves GET /health/check on SERVER_PORT (5002) like dify-plugin-daemon.
mkdir -p /www/health
printf '{"code":0,"message":"ok","data":"ok"}' > /www/health/check
httpd -f -p "${SERVER_PORT:-5002}" -h /www &
pid=$!
# PID 1: forward TERM so `docker stop` does not wait for the grace period.
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
echo "[INFO] plugin daemon started, listening on :${SERVER_PORT:-5002}"
echo "[INFO] persistence: local, storage root ${PLUGIN_STORAGE_LOCAL_ROOT:-/app/storage}"
wait $pid
