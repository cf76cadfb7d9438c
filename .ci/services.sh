#!/usr/bin/env bash
# Make sure the services the tests talk to are up. In CI (CI=true) a missing service is
# started (PostgreSQL from the machine's own cluster); elsewhere the tests that need it skip
# with a message saying what is missing.
set -u
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if command -v pg_isready >/dev/null 2>&1 && pg_up; then
  echo "services: PostgreSQL is up on 127.0.0.1:5432"
elif [ "${CI:-}" = "true" ]; then
  echo "services: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null && \
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "services: PostgreSQL did not start" >&2; exit 1; }
else
  echo "services: PostgreSQL not reachable on 127.0.0.1:5432; its tests will skip"
fi

# MariaDB (the MySQL data sources' tests): root with an empty password on 127.0.0.1:3306.
my_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }
if command -v mysqladmin >/dev/null 2>&1 && my_up; then
  echo "services: MariaDB is up on 127.0.0.1:3306"
elif [ "${CI:-}" = "true" ]; then
  echo "services: starting MariaDB"
  if ! command -v mariadbd >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
  fi
  (service mariadb start || /etc/init.d/mariadb start) >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do my_up && break; sleep 1; done
  my_up || { echo "services: MariaDB did not start" >&2; exit 1; }
  # root over TCP with no password, as the tests connect (a fresh install uses unix_socket).
  mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" >/dev/null 2>&1 || true
else
  echo "services: MariaDB not reachable on 127.0.0.1:3306; its tests will skip"
fi
