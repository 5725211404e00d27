"""API keys: who may call the /v1 routes, what each key may use, and who may administer.

No keys configured: everything is open (a local server). Keys come from two places:

- ``LORAG_API_KEYS`` / ``LORAG_ADMIN_KEYS``: keys that may use everything (admin keys may also
  administer adapters and knowledge-base writes), for the simple case;
- ``LORAG_KEYS_FILE``: a YAML file of keys with scopes and limits (:class:`KeyEntry`): which
  models (base model, adapters; shell-style patterns) and knowledge bases a key may use, whether
  it may train (upload training files, create fine-tuning jobs), and its requests and tokens per
  minute.

Every /v1 route needs ``Authorization: Bearer <key>`` once any key is configured. A missing or
unknown key is 401 (``invalid_api_key``); a valid key without admin rights is 403
(``insufficient_permissions``) on administration. A model or knowledge base outside a key's
scope is answered as if it did not exist (404), and is not listed. A fine-tuning job's run has a
key of its own while it trains (:mod:`gateway.jobs.judges`), so that its model graders can ask
the served models: it acts as the job's owner, but may only use models. Keys are compared in
constant time and never logged. The request's :class:`Principal` rides on ``request.state``.
This module knows nothing about engines or adapters.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gateway.errors import LoragError
from gateway.jobs.judges import Judges

bearer = HTTPBearer(
    auto_error=False, description="An API key from LORAG_API_KEYS, LORAG_ADMIN_KEYS or LORAG_KEYS_FILE."
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class KeyEntry(BaseModel):
    """One key of the keys file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Who holds it: shown in logs, owns its compare runs.")
    key: SecretStr = Field(min_length=8)
    admin: bool = False
    train: bool = Field(False, description="May upload training files and create fine-tuning jobs (admins may too).")
    models: list[str] = Field(["*"], description="Base model and adapter names or patterns it may use.")
    knowledge_bases: list[str] = Field(["*"], description="Knowledge-base names or patterns it may use.")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1, description="Prompt plus completion tokens.")


class KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may use."""

    name: str
    admin: bool
    train: bool = False
    models: tuple[str, ...] = ("*",)
    knowledge_bases: tuple[str, ...] = ("*",)
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def may_use_model(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.models)

    def may_use_kb(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.knowledge_bases)


OPEN = Principal("local", admin=True)
"""The caller of a server without keys."""
ANONYMOUS = Principal("anonymous", admin=False)
"""A caller without a key where only admin keys are configured: it may use, not administer."""


def read_key_file(path: Path) -> list[KeyEntry]:
    """The keys of a YAML keys file; ValueError in one line naming the file and the field at fault."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return KeyFile.model_validate(data).keys
    except OSError as e:
        raise ValueError(f"cannot read the keys file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


class ApiKeys:
    """The configured keys and the checks over them."""

    def __init__(
        self, api_keys: list[SecretStr], admin_keys: list[SecretStr], entries: list[KeyEntry] = (),
        judges: Judges | None = None,
    ):  # fmt: skip
        self.judges = judges or Judges()
        self.keys: list[tuple[bytes, Principal]] = [
            (k.get_secret_value().encode(), Principal(f"api-key-{i + 1}", admin=False)) for i, k in enumerate(api_keys)
        ]
        self.keys += [
            (k.get_secret_value().encode(), Principal(f"admin-key-{i + 1}", admin=True))
            for i, k in enumerate(admin_keys)
        ]
        for entry in entries:
            principal = Principal(
                entry.name, entry.admin, entry.train, tuple(entry.models), tuple(entry.knowledge_bases),
                entry.requests_per_minute, entry.tokens_per_minute,
            )  # fmt: skip
            self.keys.append((entry.key.get_secret_value().encode(), principal))
        self.admin_configured = any(principal.admin for _, principal in self.keys)
        self.trainer_configured = any(principal.admin or principal.train for _, principal in self.keys)
        self.key_required = bool(api_keys or entries)  # with admin keys alone, using stays open

    def identify(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller; 401 for a missing or unknown key where a key is required."""
        if not self.keys:
            return OPEN
        found = None
        for key, principal in self.keys:  # constant time in the key and over all keys: no early exit
            if credentials is not None and hmac.compare_digest(credentials.credentials.encode(), key):
                found = principal
        if found is None and credentials is not None:
            found = self._job_run(credentials.credentials)
        if found is not None:
            return found
        if credentials is None and self.key_required:
            raise LoragError(401, "missing API key: send it as 'Authorization: Bearer <key>'", code="invalid_api_key")
        if credentials is not None and self.key_required:
            raise LoragError(401, "incorrect API key provided", code="invalid_api_key")
        return ANONYMOUS

    def _job_run(self, key: str) -> Principal | None:
        """The caller of a running job's key: its owner, only to use models; None for any other key."""
        job = self.judges.find(key)
        owner = next((p for _, p in self.keys if job and p.name == job[1]), None)
        if owner is None:
            return None
        return Principal(
            owner.name,
            admin=False,
            models=owner.models,
            knowledge_bases=(),
            requests_per_minute=owner.requests_per_minute,
            tokens_per_minute=owner.tokens_per_minute,
        )

    def check_admin(self, principal: Principal, credentials: HTTPAuthorizationCredentials | None = None) -> None:
        self._check(principal.admin, self.admin_configured, principal, credentials,
                    "administer adapters or knowledge bases")  # fmt: skip

    def check_trainer(self, principal: Principal, credentials: HTTPAuthorizationCredentials | None = None) -> None:
        self._check(principal.admin or principal.train, self.trainer_configured, principal, credentials,
                    "upload training files or train")  # fmt: skip

    @staticmethod
    def _check(
        allowed: bool, configured: bool, principal: Principal, credentials: HTTPAuthorizationCredentials | None,
        action: str,
    ) -> None:  # fmt: skip
        """Pass ``allowed``; else 401 for an anonymous caller where keys that may act exist, else 403."""
        if allowed:
            return
        if principal is ANONYMOUS and configured:
            message = "missing API key: send it as 'Authorization: Bearer <key>'" if credentials is None else (
                "incorrect API key provided"
            )  # fmt: skip
            raise LoragError(401, message, code="invalid_api_key")
        if not configured:
            raise LoragError(
                403, "administration (adapters, knowledge-base writes, training) is disabled: set LORAG_ADMIN_KEYS",
                type="permission_error", code="insufficient_permissions",
            )  # fmt: skip
        raise LoragError(
            403, f"this API key may not {action}", type="permission_error", code="insufficient_permissions"
        )


def principal_of(request: Request) -> Principal:
    """The caller of this request (set by :func:`user`, or by the admission middleware before it)."""
    return getattr(request.state, "principal", None) or OPEN


async def user(request: Request, credentials: Credentials) -> None:
    """Dependency of every /v1 route: the app's :class:`ApiKeys` (``app.state.keys``) must know the key."""
    request.state.principal = request.app.state.keys.identify(credentials)


async def admin(request: Request, credentials: Credentials) -> None:
    """Dependency of the administration routes: adapters, knowledge-base writes."""
    keys: ApiKeys = request.app.state.keys
    request.state.principal = keys.identify(credentials)
    keys.check_admin(request.state.principal, credentials)


async def trainer(request: Request, credentials: Credentials) -> None:
    """Dependency of the training routes: file uploads, fine-tuning jobs (admin keys, and keys with ``train``)."""
    keys: ApiKeys = request.app.state.keys
    request.state.principal = keys.identify(credentials)
    keys.check_trainer(request.state.principal, credentials)
