"""Test harness: real OpenSSH sshd servers and OpenSSL-made PKI material."""
