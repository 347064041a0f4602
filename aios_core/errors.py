"""Exceptions services raise and the edges (API, forms) translate.

- django.core.exceptions.ValidationError (a dict naming fields) -> 422 / form errors
- ConflictError -> 409 (the state changed under the caller: decided, duplicate, claimed)
- django.core.exceptions.PermissionDenied -> 403
"""


class ConflictError(Exception):
    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
