"""recmon's own HTTP/1.1 transport behind the httpx API (`engine.transport: asyncio`).

A probe needs little of an HTTP client: one request on a kept-alive connection, the response
head, a body read under a cap. httpx's and aiohttp's general machinery around that was most of
a probe's CPU. `framing` is the protocol without I/O, `connection` one socket, `pool` the
httpx.AsyncBaseTransport.
"""
