"""API keys: who may call the /v1 routes, and who may administer adapters and knowledge bases.

No keys configured: everything is open (a local server). ``api_keys`` set: every /v1 route
needs ``Authorization: Bearer <key>`` with one of them (or an admin key). Administration
(adapters, knowledge-base writes) needs a key from ``admin_keys``; when only ``api_keys`` are set it is closed to
everyone. A missing or unknown key is 401 (``invalid_api_key``); a valid key without admin
rights is 403 (``insufficient_permissions``). Keys are compared in constant time and never
logged. This module knows nothing about engines or adapters.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from gateway.errors import LoragError

bearer = HTTPBearer(auto_error=False, description="An API key from LORAG_API_KEYS (or LORAG_ADMIN_KEYS).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _matches(key: str, keys: list[bytes]) -> bool:
    """Constant time in the key and over all ``keys`` (no early exit)."""
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode(), candidate)
    return found


def user(request: Request, credentials: Credentials) -> None:
    """Dependency of every /v1 route: the app's :class:`ApiKeys` (``app.state.keys``) must accept the key."""
    request.app.state.keys.check_user(credentials)


def admin(request: Request, credentials: Credentials) -> None:
    """Dependency of the administration routes: adapters, knowledge-base writes."""
    request.app.state.keys.check_admin(credentials)


class ApiKeys:
    """The configured keys and the two checks over them."""

    def __init__(self, api_keys: list[SecretStr], admin_keys: list[SecretStr]):
        self.api_keys = [k.get_secret_value().encode() for k in api_keys]
        self.admin_keys = [k.get_secret_value().encode() for k in admin_keys]

    def check_user(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if self.api_keys:
            self._known(credentials, self.api_keys + self.admin_keys)

    def check_admin(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if not self.admin_keys:
            if self.api_keys:
                raise LoragError(
                    403,
                    "administration (adapters, knowledge-base writes) is disabled on this server: "
                    "it has no LORAG_ADMIN_KEYS",
                    type="permission_error",
                    code="insufficient_permissions",
                )
            return
        self._known(credentials, self.api_keys + self.admin_keys)
        if not _matches(credentials.credentials, self.admin_keys):
            raise LoragError(
                403,
                "this API key may not administer adapters or knowledge bases",
                type="permission_error",
                code="insufficient_permissions",
            )

    @staticmethod
    def _known(credentials: HTTPAuthorizationCredentials | None, keys: list[bytes]) -> None:
        if credentials is None:
            raise LoragError(401, "missing API key: send it as 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not _matches(credentials.credentials, keys):
            raise LoragError(401, "incorrect API key provided", code="invalid_api_key")
