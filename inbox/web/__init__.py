"""The HTTP edge: typed endpoints, OpenAPI, middleware, health."""
