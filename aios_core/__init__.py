"""Plumbing shared by every layer: embedded servers, request context, access checks, API helpers.

It imports none of our apps, so `observability`, `routing`, `agents`, `evaluation` and
`aios_site` may all import it (see docs/architecture.md, "Layers").
"""
