"""Shared fixtures: real sshd servers and OpenSSL-made PKI (tests/support), wired in for every test."""

pytest_plugins = ["tests.support.fixtures"]
