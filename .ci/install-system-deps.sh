#!/bin/sh
# Install the Debian packages the tests need: a real OpenSSH sshd and client,
# the openssl CLI (the test PKI is made with it), sudo (the `become` tests), busybox
# (ESXi's shell, for the read script), strace (counts the read script's processes), procps
# (pgrep: where a node has no /proc, a resume finds a killed run's commands by it), tcsh (a
# login shell that is not POSIX), and Chromium with a font (the HTML report is
# opened headless: render, filter, screenshot, print to PDF), and OpenLDAP's slapd with
# its clients (the lab vCenter's VMware Directory).
# With --lab, only what the lab fleet itself needs (`sweeper demo`, `sweeper lab up`): the
# openssl CLI and OpenLDAP's slapd with its clients.
# Idempotent and non-interactive; apt is skipped when everything is present,
# so re-runs cost nothing. Runs as root (or through sudo when it exists).
set -eu

export DEBIAN_FRONTEND=noninteractive

# package:file that proves it is installed
lab="openssl:/usr/bin/openssl slapd:/usr/sbin/slapd ldap-utils:/usr/bin/ldapsearch"
wanted="$lab openssh-server:/usr/sbin/sshd openssh-client:/usr/bin/ssh-keygen sudo:/usr/bin/sudo \
busybox:/bin/busybox strace:/usr/bin/strace procps:/usr/bin/pgrep tcsh:/usr/bin/tcsh chromium:/usr/bin/chromium \
fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
if [ "${1-}" = --lab ]; then
    wanted=$lab
fi

missing=""
for item in $wanted; do
    package=${item%%:*}
    file=${item#*:}
    if [ ! -e "$file" ] || ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
        | grep -q 'install ok installed'; then
        missing="$missing $package"
    fi
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    else
        as_root="sudo -n"
    fi
    echo "install-system-deps: installing$missing" >&2
    $as_root apt-get update -q
    # shellcheck disable=SC2086  # word splitting of the package list is wanted
    $as_root apt-get install -y -q --no-install-recommends $missing
fi

if [ "${1-}" = --lab ]; then
    echo "install-system-deps: ok for the lab ($(openssl version); $(/usr/sbin/slapd -VV 2>&1 | head -n 1))" >&2
    exit 0
fi

# sshd's privilege separation directory; the package's systemd unit normally makes it.
if [ "$(id -u)" -eq 0 ]; then
    install -d -m 0755 -o root -g root /run/sshd
fi

echo "install-system-deps: ok ($(/usr/sbin/sshd -V 2>&1 | head -n 1); $(openssl version))" >&2
