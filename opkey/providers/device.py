"""Device login for headless machines (RFC 8628), nonce commitment.

opkey asks the provider for a device code (sending ``nonce=<commitment>``, as OpenPubkey
does), shows the user a verification URL and a short code to enter on any other device, and
polls the token endpoint until the user approves. Polling is polite: it waits ``interval``
seconds between requests (5 when the provider gives none), adds 5 seconds on every
``slow_down``, and stops when the device code expires or the user denies access. ``sleep`` and
``clock`` are parameters so tests need not wait in real time.

The requests are made by authlib's OAuth client on opkey's transport
(:mod:`opkey.providers.oauth`): the device authorization request with the client's
authentication, then ``fetch_token`` with the device-code grant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from opkey.errors import ProviderError
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import new_cic
from opkey.providers.oidc import LoginProvider, endpoint
from opkey.remote_text import printable

__all__ = ["DEVICE_GRANT_TYPE", "DeviceFlowProvider", "DevicePrompt"]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
_DEFAULT_INTERVAL = 5.0
_SLOW_DOWN_STEP = 5.0
_MAX_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class DevicePrompt:
    """What the user must do to approve the login on another device."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float

    def message(self) -> str:
        """Instructions for a terminal."""
        text = f"To sign in, open {self.verification_uri} and enter the code {self.user_code}"
        if self.verification_uri_complete:
            text += f"\n(or open {self.verification_uri_complete})"
        return text


def _str(document: Mapping[str, Any], name: str, what: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{what}: the response has no string {name!r}", expected=name)
    return value


def _seconds(document: Mapping[str, Any], name: str, default: float | None, what: str) -> float:
    value = document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ProviderError(f"{what}: {name!r} must be a non-negative number, found {value!r}")
    return float(value)


@dataclass
class DeviceFlowProvider(LoginProvider):
    """PK tokens from an RFC 8628 device login (see module doc)."""

    on_prompt: Callable[[DevicePrompt], None] | None = field(default=None, repr=False)
    output: TextIO | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    request_timeout: float = 10.0

    def _prompt(self, prompt: DevicePrompt) -> None:
        if self.on_prompt is not None:
            self.on_prompt(prompt)
            return
        stream = self.output if self.output is not None else sys.stderr
        print(prompt.message(), file=stream, flush=True)

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """Run the device login and return the PK token."""
        from opkey.providers.oauth import BoundedOAuth2Session, OAuthRefusal

        client = self.client
        what = f"device login at {client.issuer}"
        metadata = self._metadata()
        device_url = endpoint(metadata, "device_authorization_endpoint")
        session = BoundedOAuth2Session.at_token_endpoint(
            client, self.transport, metadata, timeout=self.request_timeout
        )
        cic = new_cic(signing_key, extra_claims)
        document = session.post_form(
            device_url,
            {"scope": client.scope, "nonce": cic.commitment()},
            what=f"{what} device authorization",
        )
        if isinstance(document, OAuthRefusal):
            raise ProviderError(
                f"{what}: device authorization refused: {document}", found=document.error
            )
        device_code = _str(document, "device_code", what)
        # Google names it verification_url; RFC 8628 verification_uri.
        uri_name = "verification_uri" if "verification_uri" in document else "verification_url"
        complete = document.get("verification_uri_complete")
        # The code and URLs are shown to the user: never let the provider's text drive a
        # terminal (escape sequences), whatever it sends.
        prompt = DevicePrompt(
            user_code=printable(_str(document, "user_code", what)),
            verification_uri=printable(_str(document, uri_name, what), limit=1000),
            verification_uri_complete=printable(complete, limit=1000)
            if isinstance(complete, str)
            else None,
            expires_in=_seconds(document, "expires_in", None, what),
        )
        interval = min(_seconds(document, "interval", _DEFAULT_INTERVAL, what), _MAX_INTERVAL)
        deadline = self.clock() + prompt.expires_in
        self._prompt(prompt)
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise ProviderError(
                    f"{what}: the device code expired before the login was approved"
                )
            self.sleep(min(interval, remaining))
            token = session.request_token(
                what=f"{what} token poll",
                grant_type=DEVICE_GRANT_TYPE,
                device_code=device_code,
            )
            if not isinstance(token, OAuthRefusal):
                break
            error, description = token.error, token.description
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval = min(interval + _SLOW_DOWN_STEP, _MAX_INTERVAL)
                continue
            if error == "access_denied":
                raise ProviderError(f"{what}: the user denied the login", found=error)
            if error == "expired_token":
                raise ProviderError(
                    f"{what}: the device code expired before the login was approved", found=error
                )
            raise ProviderError(
                f"{what}: the token endpoint refused: {error}"
                + (f": {description}" if description else ""),
                found=error,
            )
        return self._finish_login(token, cic, signing_key, what=what)
