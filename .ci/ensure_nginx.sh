#!/usr/bin/env bash
# The two-replica browser test (tests/browser/test_replicas.py) puts Debian's nginx in front of two
# `streamlit run` servers. Install it when missing and we may (root with apt); otherwise that test
# is skipped with a message saying why. Only the binary is used: the test runs its own nginx as the
# current user with a temporary config, so the package's own service is neither needed nor started.
set -u
if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's nginx for the two-replica test..."
  # policy-rc.d exit 101: the package must not start its service (no systemd in a container, port 80 taken)
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null) \
    || echo "could not install nginx: the two-replica test will be skipped"
  if [ "$made_policy" = "1" ]; then rm -f "$policy"; fi
else
  echo "no nginx (install Debian's nginx package): the two-replica test will be skipped"
fi
exit 0
