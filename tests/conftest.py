"""Shared fixtures: real sshd servers and OpenSSL-made PKI (tests/support/fixtures), and every test's
own home, key cache and working folder (tests/support/hygiene), wired in for every test."""

pytest_plugins = ["tests.support.fixtures", "tests.support.hygiene"]
