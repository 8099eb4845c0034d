"""The composed shape: settings objects, the 0.1 keywords, the chain registry, the middleware's
authenticator protocol, and imports that point one way."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope

from asgi_wallet_auth import (
    ChainRegistry,
    EthereumVerifier,
    LoginSettings,
    TokenSettings,
    WalletAuth,
    WalletAuthMiddleware,
    WalletUser,
    Web3MQSettings,
)
from asgi_wallet_auth.compat import LegacyDidVerifier, settings_from_keywords
from asgi_wallet_auth.ens import NameSettings
from asgi_wallet_auth.errors import InvalidRequest, TokenInvalid
from asgi_wallet_auth.gates import Erc20Balance, GateSettings
from asgi_wallet_auth.web3mq import EthDidVerifier
from tests.conftest import DOMAIN, SECRET_KEY, URI, FakeClock, client_for, sign_text

SRC = Path(__file__).resolve().parents[1] / "src" / "asgi_wallet_auth"


def _new(clock: FakeClock, **kwargs: Any) -> WalletAuth:
    return WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock, **kwargs)


async def _raw_login(auth: WalletAuth, wallet: LocalAccount) -> Any:
    async with client_for(auth) as client:
        secret = (
            await client.post("/login_random_secret", json={"wallet_address": wallet.address})
        ).json()["data"]
        return await client.post(
            "/login",
            json={
                "login_random_secret": secret,
                "signature": sign_text(wallet, secret),
                "wallet_address": wallet.address,
            },
        )


async def test_settings_objects_configure_the_service(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = _new(clock, tokens=TokenSettings(lifetime=600, revocation=True))
    response = await _raw_login(auth, wallet)
    assert response.status_code == 200
    assert response.json()["data"]["expires_in"] == 600
    assert "/logout" in auth.routes  # revocation on: the session layer registers logout

    strict = _new(clock, login=LoginSettings(allow_raw_secret=False))
    refused = await _raw_login(strict, wallet)
    assert refused.status_code == 400 and refused.json()["code"] == 40005


def test_the_new_constructor_takes_few_keywords() -> None:
    import inspect

    named = [
        p
        for p in inspect.signature(WalletAuth).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert len(named) <= 17, [p.name for p in named]


def test_a_flat_keyword_still_works_and_warns_with_the_new_spelling(clock: FakeClock) -> None:
    with pytest.warns(DeprecationWarning, match=re.escape("tokens=TokenSettings(lifetime=...)")):
        auth = _new(clock, token_lifetime=120)
    assert auth.token_settings.lifetime == 120
    with pytest.warns(DeprecationWarning, match=re.escape("EthereumVerifier(chain_ids=...)")):
        auth = _new(clock, chain_ids={10})
    assert auth.chains["eth"].chain_ids == frozenset({10})  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="web3mq=Web3MQSettings"):
        auth = _new(clock, signed_requests=True, max_devices=3)
    assert auth.web3mq_settings == Web3MQSettings(signed_requests=True, max_devices=3)


def test_a_flat_keyword_beside_its_settings_object_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="inside tokens="):
        settings_from_keywords(tokens=TokenSettings(), token_lifetime=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="inside login="):
            _new(clock, login=LoginSettings(), nonce_lifetime=60)


def test_an_unknown_keyword_is_a_type_error(clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="tokens_lifetime"):
        _new(clock, tokens_lifetime=60)


def test_legacy_did_verifiers_map_onto_the_chain_registry() -> None:
    chains = settings_from_keywords(did_verifiers={"eth": EthDidVerifier()}, chain_ids={1})[
        "chains"
    ]
    assert [type(c) for c in chains] == [EthereumVerifier]  # the built-in: its fast path kept
    custom = settings_from_keywords(did_verifiers={"eth": EthDidVerifier(), "x": object()})
    assert isinstance(custom["chains"][1], LegacyDidVerifier)


@pytest.mark.parametrize(
    ("factory", "fix"),
    [
        (lambda: TokenSettings(cache_size=-1), "cache_size must be an int >= 0"),
        (lambda: TokenSettings(issuer=""), "issuer must be None"),
        (lambda: LoginSettings(clock_skew=601), "clock_skew must be between 0 and 600"),
        (lambda: Web3MQSettings(uris="https://example.com"), "non-empty list of URIs"),
        (lambda: Web3MQSettings(timestamp_window=(0, 1)), "timestamp_window"),
        (lambda: Web3MQSettings(max_devices=0), "max_devices must be an int of at least 1"),
        (lambda: EthereumVerifier(chain_ids=[0]), "chain_ids"),
        (lambda: ChainRegistry({}), "at least one chain"),
        (lambda: ChainRegistry({"eth": object()}), "must implement ChainVerifier"),  # type: ignore[dict-item]
    ],
)
def test_each_settings_object_checks_itself(factory: Any, fix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        factory()


def test_two_verifiers_of_one_did_type_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="one verifier per did_type"):
        _new(clock, chains=[EthereumVerifier(), EthereumVerifier()])


def test_the_registry_matches_an_address_to_its_chain(wallet: LocalAccount) -> None:
    registry = ChainRegistry({"eth": EthereumVerifier()})
    verifier, address = registry.for_address(wallet.address.lower())
    assert verifier.did_type == "eth" and address == wallet.address
    with pytest.raises(InvalidRequest) as refused:
        registry.for_address("not-an-address")
    assert refused.value.code == 40002  # the default chain's own refusal
    with pytest.raises(InvalidRequest, match="supported: eth"):
        registry.for_did_type("sol")


class _HeaderAuthenticator:
    """Not a WalletAuth: accepts one fixed token (only to show the middleware's contract)."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.revocation = False
        self.token_cache_size = 0

    def authenticate_token(self, token: str) -> WalletUser:
        if token != "a.b.c":
            raise TokenInvalid()
        return WalletUser(address="0x" + "1" * 40, userid="u", did_type="eth", claims={})

    async def authenticate_bearer(self, token: str) -> WalletUser:
        return self.authenticate_token(token)

    async def authenticate_cookie(self, scope: Scope) -> WalletUser | None:
        return None

    async def authenticate_signed(
        self, scope: Scope, receive: Receive
    ) -> tuple[WalletUser | None, Receive]:
        return None, receive


async def test_the_middleware_depends_on_the_authenticator_protocol_only() -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"userid": getattr(request.user, "userid", None)})

    app = WalletAuthMiddleware(Starlette(routes=[Route("/me", me)]), auth=_HeaderAuthenticator())
    async with client_for(app) as client:
        ok = await client.get("/me", headers={"authorization": "Bearer a.b.c"})
        bad = await client.get("/me", headers={"authorization": "Bearer x.y.z"})
    assert ok.json() == {"userid": "u"}
    assert bad.status_code == 401 and bad.json()["code"] == 40111
    with pytest.raises(ValueError, match="Authenticator"):
        WalletAuthMiddleware(app, auth=object())  # type: ignore[arg-type]


def _imports(path: Path) -> set[str]:
    """Package-relative modules that ``path`` imports at run time (not under TYPE_CHECKING)."""
    package = ["asgi_wallet_auth", *path.relative_to(SRC).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_no_import_cycle_in_the_package() -> None:
    modules = {
        ".".join(["asgi_wallet_auth", *p.relative_to(SRC).with_suffix("").parts]).removesuffix(
            ".__init__"
        ): p
        for p in SRC.rglob("*.py")
    }
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its modules is not a cycle of the code's dependencies.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    assert "asgi_wallet_auth.app" not in graph["asgi_wallet_auth.middleware"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", 0, "timeout must be a positive number of seconds"),
        ("timeout", float("nan"), "timeout must be a positive number of seconds"),
        ("timeout", True, "timeout must be a positive number of seconds"),
        ("cache_ttl", -1, "cache_ttl must be a number of seconds >= 0"),
        ("cache_ttl", float("nan"), "cache_ttl must be a number of seconds >= 0"),
        ("cache_ttl", "60", "cache_ttl must be a number of seconds >= 0"),
        ("cache_size", -1, "cache_size must be an int of at least 0"),
        ("cache_size", 1.5, "cache_size must be an int of at least 0"),
    ],
)
def test_gate_and_name_lookups_refuse_bad_timings_at_construction(
    field: str, value: object, message: str
) -> None:
    rule = Erc20Balance("holder", "0x" + "1" * 40, 1, chain_id=1)
    with pytest.raises(ValueError, match=message):
        GateSettings(rules=[rule], **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        NameSettings(**{field: value})  # type: ignore[arg-type]
    # Zero is a valid cache lifetime and size (no caching), for both.
    GateSettings(rules=[rule], cache_ttl=0, cache_size=0)
    NameSettings(cache_ttl=0, cache_size=0)
