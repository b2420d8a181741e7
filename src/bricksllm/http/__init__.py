"""HTTP front ends on aiohttp.web: the admin API (port 8001) and, later, the proxy (port 8002).

Handlers are thin: parse and validate the request (Pydantic models in `admin_schemas`), call a
service, serialise the result. Exceptions become problem+json responses in `problems` only.
"""
