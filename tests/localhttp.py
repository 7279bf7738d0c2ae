"""One TLS context for the tests' own HTTP clients (polling a server until it answers,
querying Prometheus, reading recmon's endpoints).

httpx builds a TLS context for every client it creates, parsing the CA bundle again: ~25 ms
of CPU, spent even for an http:// URL. The suite's polling loops create a client per poll
(every 0.1-0.25 s while a server starts or a page is awaited): 59 contexts, 1.3 of the 3.0
CPU-seconds of one test_locations case's own process. Clients given `verify=TLS` share this
one, built as httpx builds its default (certifi's CA bundle, verification on)."""

from __future__ import annotations

import httpx

TLS = httpx.create_ssl_context()
