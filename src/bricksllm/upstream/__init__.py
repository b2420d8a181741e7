"""Adapters of the `ports.Upstream` seam: how the proxy reaches providers over HTTP.

`aiohttp_client` is the production adapter; `fake` answers from a function, in memory, for
unit tests of the proxy pipeline (in the spirit of httpx's `MockTransport`).
"""
