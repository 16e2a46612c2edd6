#!/usr/bin/env bash
# Install the Debian packages of the Slurm test cluster (tests marked `slurm`), idempotently:
# does nothing when they are all installed, and only says why when it cannot (not root, not Debian).
# `make test` runs it; MariaDB is installed only where none runs (this machine and CI run one).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client slurmdbd slurm-wlm-basic-plugins slurm-wlm-mysql-plugin munge)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! { [ -S /run/mysqld/mysqld.sock ] || command -v mariadbd >/dev/null 2>&1; }; then
  missing+=(mariadb-server)
fi
command -v mysql >/dev/null 2>&1 || missing+=(mariadb-client)  # the harness creates slurmdbd's database
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm test cluster: not root, so not installing ${missing[*]}; the tests marked slurm will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "slurm test cluster: no apt-get here; the tests marked slurm will skip" >&2
  exit 0
fi
echo "==> installing the Slurm test cluster: ${missing[*]}"
# No systemd here: keep package scripts from starting services (the harness starts its own daemons).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
