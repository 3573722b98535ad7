"""Browser login: authorization code flow with PKCE and a loopback redirect, nonce commitment.

The user signs in at their provider in a browser; the provider redirects to a listener on
``127.0.0.1`` (:mod:`opkey.providers.loopback`), opkey exchanges the code for an ID token whose
``nonce`` is the CIC commitment, and wraps it. Safeguards:

* PKCE ``S256`` (the verifier never leaves this process), so an intercepted code is useless;
* ``state`` is random and compared in constant time; redirects with another state are refused;
* the ``iss`` authorization response parameter, when the provider sends it, must be the
  expected issuer (RFC 9207, mix-up defence);
* endpoints come from the issuer's discovery document, fetched through the JWKS client (same
  allowlist, exact issuer match, no redirects) and are checked with ``check_url``;
* the wait for the redirect has a timeout.

The browser is opened with Python's :mod:`webbrowser` (so ``$BROWSER`` is honoured), or with
an ``opener`` callable; ``no_browser=True`` only prints the URL. The OAuth client is authlib's
(authorization URL with the PKCE challenge, code exchange, client authentication), sending
through opkey's transport (:mod:`opkey.providers.oauth`).
"""

from __future__ import annotations

import hmac
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from opkey.errors import ProviderError
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import new_cic
from opkey.providers.loopback import LoopbackListener
from opkey.providers.oidc import LoginProvider, endpoint
from opkey.remote_text import printable

__all__ = ["BrowserProvider", "Opener"]

#: Opens a URL in a browser; returns ``False`` when no browser could be started.
Opener = Callable[[str], bool]


def _webbrowser_open(url: str) -> bool:
    import webbrowser

    return webbrowser.open(url)


@dataclass
class BrowserProvider(LoginProvider):
    """PK tokens from an interactive browser login (see module doc)."""

    no_browser: bool = False
    opener: Opener | None = field(default=None, repr=False)
    timeout: float = 300.0
    request_timeout: float = 10.0
    output: TextIO | None = field(default=None, repr=False)

    def _say(self, text: str) -> None:
        stream = self.output if self.output is not None else sys.stderr
        print(text, file=stream, flush=True)

    def _open(self, url: str) -> None:
        if self.no_browser:
            self._say(f"Open this URL in a browser to sign in:\n\n    {url}\n")
            return
        opener = self.opener if self.opener is not None else _webbrowser_open

        def run() -> None:
            try:
                opened = opener(url)
            except Exception as exc:  # a broken browser command must not hide the URL
                self._say(f"Could not open a browser ({exc}).")
                opened = False
            if not opened:
                self._say(f"Open this URL in a browser to sign in:\n\n    {url}\n")

        # The browser command may keep running (a $BROWSER program waits for its window);
        # the login completes as soon as the redirect arrives, whatever it does.
        threading.Thread(target=run, name="opkey-browser", daemon=True).start()

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """Run the login and return the PK token."""
        from authlib.common.security import generate_token

        from opkey.providers.oauth import BoundedOAuth2Session, OAuthRefusal, call

        client = self.client
        what = f"browser login at {client.issuer}"
        metadata = self._metadata()
        methods = metadata.code_challenge_methods_supported
        if methods and "S256" not in methods:
            raise ProviderError(
                f"{client.issuer} does not support PKCE S256 (it offers {list(methods)})"
            )
        authorize_url = endpoint(metadata, "authorization_endpoint")
        session = BoundedOAuth2Session.at_token_endpoint(
            client, self.transport, metadata, timeout=self.request_timeout
        )
        cic = new_cic(signing_key, extra_claims)
        verifier = generate_token(64)
        state = secrets.token_urlsafe(32)
        with LoopbackListener(client.redirect_uris, expected_state=state) as listener:
            url, _ = call(
                lambda: session.create_authorization_url(
                    authorize_url,
                    state=state,
                    code_verifier=verifier,
                    redirect_uri=listener.redirect_uri,
                    scope=client.scope,
                    nonce=cic.commitment(),
                    **dict(client.extra_auth_params),
                ),
                what=what,
            )
            self._open(url)
            params = listener.wait(self.timeout)
            redirect_uri = listener.redirect_uri
        # state was compared by the listener, in constant time; iss is checked here (RFC 9207)
        issuer_param = params.get("iss")
        if issuer_param is not None and not hmac.compare_digest(
            issuer_param.encode("utf-8"), client.issuer.encode("utf-8")
        ):
            raise ProviderError(
                f"{what}: the redirect names issuer {issuer_param!r}; expected {client.issuer!r}",
                expected=client.issuer,
                found=issuer_param,
            )
        if "error" in params:
            description = printable(params.get("error_description", ""))
            raise ProviderError(
                f"{what}: the provider refused the login: {printable(params['error'])}"
                + (f": {description}" if description else ""),
                found=params["error"],
            )
        code = params.get("code")
        if not code:
            raise ProviderError(f"{what}: the redirect carries no authorization code")
        document = session.request_token(
            what=f"{what} token request",
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier,
        )
        if isinstance(document, OAuthRefusal):
            raise ProviderError(
                f"{what}: the token endpoint refused the code: {document}", found=document.error
            )
        return self._finish_login(document, cic, signing_key, what=what)
