"""Logging in and out, the caller, their personal tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from medarena.api.deps import CallerDep, SettingsDep
from medarena.api.schemas import Token, TokenCreate
from medarena.services import accounts

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/token", response_model=Token)
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, settings: SettingsDep) -> Token:
    """OAuth2 password flow: a user name and password for a bearer token (valid 7 days)."""
    address = request.client.host if request.client else "unknown"
    return Token(access_token=accounts.login(settings, form.username, form.password, address))


@router.post("/auth/logout", status_code=204)
def logout(settings: SettingsDep, caller: CallerDep) -> Response:
    """Revoke the token of this request."""
    accounts.logout(settings, caller)
    return Response(status_code=204)


@router.get("/me")
def me(settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """The caller: user name, admin flag, roles in challenges."""
    return accounts.me(settings, caller)


@router.get("/me/tokens")
def my_tokens(settings: SettingsDep, caller: CallerDep) -> list[dict[str, Any]]:
    return accounts.list_my_tokens(settings, caller)


@router.post("/me/tokens", status_code=201)
def create_my_token(body: TokenCreate, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """A personal API token; the token itself is in this answer only."""
    token, row = accounts.create_my_token(settings, caller, body.name, body.expires_in_days)
    return {**row, "token": token}


@router.delete("/me/tokens/{token_id}")
def revoke_my_token(token_id: int, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return accounts.revoke_my_token(settings, caller, token_id)
