"""Certificate, key and CRL work; the only package that imports pyca/cryptography."""
