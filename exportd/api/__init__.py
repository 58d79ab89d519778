"""The HTTP API, and the only importer of aiohttp.web: the app factory, middleware, request
parsing, auth, routes and the OpenAPI document."""
