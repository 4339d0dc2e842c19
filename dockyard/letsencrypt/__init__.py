"""Certificates from an ACME CA (Let's Encrypt) for ``http.tls.letsencrypt``: the cache
file, the ACME order (certbot's ``acme`` library), the HTTP-01 responder, and the
start-up, renewal and reload of the certificate across workers."""
