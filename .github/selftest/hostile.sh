#!/usr/bin/env bash
# Lays out a hostile environment for the self-test in ci.yml: programs on PATH, modules on
# PYTHONPATH and AWS configuration in HOME that each leave a marker file when used. The action
# must use none of them; the workflow then checks that the markers directory is empty.
#
# Usage: hostile.sh HOST_DIR CONTAINER_DIR HOME_DIR
#   HOST_DIR       where to write, on the runner (inside the workspace)
#   CONTAINER_DIR  the same directory as the action's container sees it (/github/workspace/...)
#   HOME_DIR       the runner's directory that Docker actions get as HOME (/github/home)
set -euo pipefail

host=$1
ctr=$2
home=$3

mkdir -p "$host/bin" "$host/pythonpath" "$host/markers" "$home/.aws"
chmod 0777 "$host/markers" # the container writes here as root, the runner reads as its user

for prog in python python3 aws sh bash git pip env; do
  printf '#!/bin/sh\n: > %s/markers/PATH-%s\nexit 0\n' "$ctr" "$prog" >"$host/bin/$prog"
  chmod +x "$host/bin/$prog"
done

trap_py() { printf 'open("%s/markers/PYTHONPATH-%s", "w").close()\n' "$ctr" "$1"; }
for module in sitecustomize yaml jsonschema; do
  trap_py "$module" >"$host/pythonpath/$module.py"
done
for package in secrets_sync boto3 botocore actions_toolkit; do
  mkdir -p "$host/pythonpath/$package"
  trap_py "$package" >"$host/pythonpath/$package/__init__.py"
done

# An earlier step of the job can leave these in the HOME that every Docker action shares.
cat >"$home/.aws/config" <<EOF
[default]
credential_process = $ctr/bin/aws
region = eu-west-3
EOF
cat >"$home/.aws/credentials" <<'EOF'
[default]
aws_access_key_id = AKIAPOISONEDHOME0000
aws_secret_access_key = poisoned-home-credentials
EOF
