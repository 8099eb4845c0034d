"""The sign-in page and the JS client: the package's static files, served by a small ASGI app.

``SignInPage`` answers the page at its root (``/``), the JS client at ``wallet-auth.js`` and the
page's own script and style. ``asgi-wallet-auth serve`` serves it at ``/``; an app mounts it::

    Mount("/signin", app=SignInPage(auth_url="/auth", me_url="/me"))

No build step, no CDN: the files ship in the package (``asgi_wallet_auth/static``).
"""

from __future__ import annotations

import html
import re
from importlib import resources
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from .envelope import send_error
from .errors import MethodNotAllowed, NotFound

#: The JS client's file name: a stable path wherever the page is served.
CLIENT_FILE = "wallet-auth.js"
_TYPES = {
    CLIENT_FILE: b"text/javascript; charset=utf-8",
    "signin.js": b"text/javascript; charset=utf-8",
    "signin.css": b"text/css; charset=utf-8",
}
# An origin and/or a path; never ``//host`` (a path that browsers read as another origin).
_URL_RE = re.compile(r"(?:https?://[A-Za-z0-9.\-\[\]:]+)?(?:/(?!/)[A-Za-z0-9._~\-/]*)?")
_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Files change with the package: a browser revalidates instead of keeping an old client.
    (b"cache-control", b"no-cache"),
)


def read_static(name: str) -> bytes:
    """A file of the package's ``static`` folder."""
    return (resources.files(__package__) / "static" / name).read_bytes()


def _checked_url(label: str, value: object) -> str:
    if not isinstance(value, str) or _URL_RE.fullmatch(value) is None:
        raise ValueError(
            f"{label} must be a path such as '/auth' or an origin and path such as "
            f"'https://auth.example.com'; got {value!r}"
        )
    return value.rstrip("/") if label == "auth_url" else value


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else None


class SignInPage:
    """ASGI app: the sign-in page (``/``), the JS client (``/wallet-auth.js``) and their assets.

    ``auth_url``: where the login routes are, as the page's browser reaches them (``""``: the
    page's own origin root, as in ``serve``; ``"/auth"``; ``"https://auth.example.com"``).
    ``me_url``: a protected route the page calls to show the session (None: none).
    """

    def __init__(self, *, auth_url: str = "", me_url: str | None = "/me") -> None:
        auth_url = _checked_url("auth_url", auth_url)
        me = "" if me_url is None else _checked_url("me_url", me_url)
        page = read_static("index.html").decode("utf-8")
        page = page.replace("{{auth_url}}", html.escape(auth_url, quote=True))
        page = page.replace("{{me_url}}", html.escape(me, quote=True))
        # The page runs its own files only; it talks to the service and to nothing else.
        connect = " ".join(
            dict.fromkeys(["'self'", *(o for o in (_origin(auth_url), _origin(me)) if o)])
        )
        policy = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        self.files: dict[str, tuple[bytes, list[tuple[bytes, bytes]]]] = {
            "": (
                page.encode("utf-8"),
                [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-security-policy", policy.encode("ascii")),
                    (b"x-frame-options", b"DENY"),  # a login page inside another site's frame
                ],
            )
        }
        for name, kind in _TYPES.items():
            headers = [(b"content-type", kind)]
            if name == CLIENT_FILE:
                # Public code any dapp may import as a module (fetched in CORS mode, without
                # credentials): a wildcard is right here, as it never is for the API.
                headers += [
                    (b"access-control-allow-origin", b"*"),
                    (b"cross-origin-resource-policy", b"cross-origin"),
                ]
            self.files[name] = (read_static(name), headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one of the files (GET or HEAD)."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path == "":  # mounted at /signin and asked for /signin: relative links need the slash
            await send_redirect(send, (root or "") + "/")
            return
        name = path.lstrip("/")
        name = "" if name == "index.html" else name
        found = self.files.get(name) if "/" not in name else None
        if found is None:
            await send_error(send, NotFound())
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, MethodNotAllowed(headers={"allow": "GET, HEAD"}))
            return
        body, headers = found
        length = (b"content-length", str(len(body)).encode("ascii"))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*headers, *_COMMON, length]}
        )
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})


async def send_redirect(send: Send, location: str) -> None:
    """A 308 to ``location`` (same method, same body)."""
    await send(
        {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


__all__ = ["CLIENT_FILE", "SignInPage", "read_static"]
