"""Downlink's Airflow auth manager: named accounts with roles (admin, operator, viewer) from the
users file (account_store), passwords checked against scrypt hashes (account_passwords), rights
from the role table (account_roles).

It stands in for the FAB auth manager (whose provider does not install from this machine's
package index) and replaces SimpleAuthManager, which keeps passwords in clear. Configured with
AIRFLOW__CORE__AUTH_MANAGER=downlink_airflow.auth_manager.DownlinkAuthManager.

The login page is SimpleAuthManager's (it posts the form to /auth/token); the token endpoints
behind it are ours, throttled (login_throttle: 429 with Retry-After). A token names the user and
carries a tag of their password hash (account_passwords.credential_tag): each request looks the
account up again, so a changed role takes effect at once, and a password reset or a removed
account ends the sessions issued before it at once, not when the token expires
([api_auth] jwt_expiration_time, DOWNLINK_SESSION_SECONDS in docker-compose.yaml).
"""
from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlencode

from airflow.api_fastapi.app import AUTH_MANAGER_FASTAPI_APP_PREFIX
from airflow.api_fastapi.auth.managers import simple as simple_package
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody, LoginResponse
from airflow.api_fastapi.auth.managers.simple.utils import parse_login_body
from airflow.api_fastapi.common.router import AirflowRouter
from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from downlink_airflow import account_passwords, account_roles, account_store, login_throttle

log = logging.getLogger(__name__)


def credential_tag(password_hash):
    """The claim that binds a token to the password it was signed in with."""
    return account_passwords.credential_tag(password_hash, conf.get("api_auth", "jwt_secret", fallback="") or "")


class DownlinkUser(BaseUser):
    def __init__(self, *, username: str, role: str | None, credential: str = "") -> None:
        self.username = username
        self.role = role
        self.credential = credential  # credential_tag of the account's hash when the user was read

    def get_id(self) -> str:
        return self.username

    def get_name(self) -> str:
        return self.username

    def __eq__(self, other):
        return isinstance(other, DownlinkUser) and (self.username, self.role) == (other.username, other.role)

    def __hash__(self):
        return hash(self.username)


class Accounts:
    """The users file, re-read whenever it changes (the CLI replaces it by rename)."""

    def __init__(self, path=None):
        self.path = path or account_store.default_path()
        self._key = None
        self._accounts = {}
        self._lock = threading.Lock()

    def current(self):
        st = os.stat(self.path)  # FileNotFoundError: the volume lost its file; refuse everyone
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                self._accounts = account_store.load(self.path)
                self._key = key
            return self._accounts

    def get(self, name):
        return self.current().get(name)

    def authenticate(self, username, password):
        """The user if the password is right, else None (same work whether the name exists or not)."""
        account = self.get(username)
        if account is None:
            account_passwords.burn_time(password)
            return None
        if not account_passwords.verify_password(password, account.password_hash):
            return None
        return user_of(account)


def valid_name(name):
    try:
        account_store.check_name(name)
        return True
    except ValueError:
        return False


def user_of(account):
    return DownlinkUser(username=account.name, role=account.role, credential=credential_tag(account.password_hash))


class DownlinkAuthManager(BaseAuthManager[DownlinkUser]):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accounts = Accounts()
        self.throttle = login_throttle.LoginThrottle()

    def init(self) -> None:
        super().init()
        # Fail at start-up, naming the file and line, rather than refusing every login later.
        accounts = account_store.load(self.accounts.path)
        if not any(a.role == "admin" for a in accounts.values()):
            log.warning("%s has no admin account", self.accounts.path)

    def _get_teams(self) -> set[str]:
        return set()  # no multi-team mode

    # -- users and tokens --------------------------------------------------------------------

    def serialize_user(self, user: DownlinkUser) -> dict:
        return {"sub": user.username, "role": user.role, "cred": user.credential}

    def deserialize_user(self, token: dict) -> DownlinkUser:
        account = self.accounts.get(token["sub"])
        if account is None:
            raise ValueError(f"no account {token['sub']!r} (removed?)")
        user = user_of(account)  # today's role, not the token's
        if not hmac.compare_digest(str(token.get("cred", "")), user.credential):
            raise ValueError(f"the password of {account.name!r} changed after this token was issued")
        return user

    def get_url_login(self, **kwargs) -> str:
        url = AUTH_MANAGER_FASTAPI_APP_PREFIX + "/login"
        next_url = kwargs.get("next_url")
        return f"{url}?{urlencode({'next': next_url})}" if next_url else url

    def create_token(self, body: LoginBody, expiration_time_in_seconds: int, client: str | None = None) -> str:
        """A JWT for the account, or HTTPException: 400 bad input, 401 wrong name or password, 429
        throttled (client: the caller's address, counted for backoff)."""
        if not body.username or not body.password:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Username and password must be provided")
        if not (account_passwords.encodable(body.username) and account_passwords.encodable(body.password)):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Username and password must be valid Unicode text")
        name = body.username if valid_name(body.username) else None  # else it cannot be an account
        found = [None]

        def verify():
            found[0] = self.accounts.authenticate(name, body.password) if name else None
            return found[0] is not None

        try:
            self.throttle.check(name, client, verify)
        except login_throttle.Throttled as exc:
            log.warning("throttled a login as %r from %s: %s", body.username[:80], client, exc)
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                                headers={"Retry-After": str(exc.seconds)}) from None
        if not found[0]:
            log.info("refused a login as %r from %s", body.username[:80], client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid credentials")
        return self.generate_jwt(found[0], expiration_time_in_seconds=expiration_time_in_seconds)

    # -- authorization: everything goes through the role table --------------------------------

    @staticmethod
    def _allowed(user: DownlinkUser, resource: str, method: str) -> bool:
        return account_roles.allowed(user.role, resource, method)

    def is_authorized_configuration(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "configuration", method)

    def is_authorized_connection(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "connection", method)

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        return self._allowed(user, "dag", method)

    def is_authorized_asset(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "asset", method)

    def is_authorized_asset_alias(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "asset_alias", method)

    def is_authorized_pool(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "pool", method)

    def is_authorized_team(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "team", method)

    def is_authorized_variable(self, *, method, user, details=None) -> bool:
        return self._allowed(user, "variable", method)

    def is_authorized_view(self, *, access_view, user) -> bool:
        return self._allowed(user, "view", "GET")

    def is_authorized_custom_view(self, *, method, resource_name, user) -> bool:
        return self._allowed(user, "custom_view", method)

    def filter_authorized_menu_items(self, menu_items, *, user):
        return [item for item in menu_items if account_roles.menu_allowed(user.role, item.value)]

    # -- the login page and token endpoints, mounted at /auth ---------------------------------

    def get_fastapi_app(self) -> FastAPI | None:
        manager = self
        router = AirflowRouter(tags=["DownlinkLogin"])

        def address(request):
            return request.client.host if request.client else None

        @router.post("/token", status_code=status.HTTP_201_CREATED)
        def create_token(request: Request, body: LoginBody = Depends(parse_login_body)) -> LoginResponse:
            """Sign in (the login page and API clients): a JWT for the account."""
            return LoginResponse(access_token=manager.create_token(
                body, conf.getint("api_auth", "jwt_expiration_time"), address(request)))

        @router.post("/token/cli", status_code=status.HTTP_201_CREATED)
        def create_token_cli(request: Request, body: LoginBody) -> LoginResponse:
            """Sign in for the airflow CLI ([api_auth] jwt_cli_expiration_time)."""
            return LoginResponse(access_token=manager.create_token(
                body, conf.getint("api_auth", "jwt_cli_expiration_time"), address(request)))

        # SimpleAuthManager's built login page (a form that posts to /auth/token).
        ui = Path(simple_package.__file__).parent / "ui" / "dist"
        templates = Jinja2Templates(directory=ui)
        app = FastAPI(title="Downlink accounts", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(router)
        app.mount("/static", StaticFiles(directory=ui, html=True), name="downlink_login_ui")

        @app.get("/{rest_of_path:path}", response_class=HTMLResponse, include_in_schema=False)
        def login_page(request: Request, rest_of_path: str):
            return templates.TemplateResponse(request, "/index.html",
                                              {"backend_server_base_url": request.base_url.path},
                                              media_type="text/html")

        return app
