#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (never `playwright install`,
# which downloads). Install it when missing and we may (root with apt); otherwise the browser
# tests are skipped with a message saying why.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: browser tests will be skipped"
else
  echo "no /usr/bin/chromium (install Debian's chromium package): browser tests will be skipped"
fi
exit 0
