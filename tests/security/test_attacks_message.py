"""Attacks on the signed message: a phishing site's look-alike domain or URI, another chain, another
address or nonce, smuggled lines, and Web3MQ contents that do not name this login.

The wallet really signs each tampered text, so only the message checks can stop it. Each refusal is
checked for its documented status and code (docs/protocol.md, docs/web3mq.md, docs/errors.md:
40004 for a text that is not strict EIP-4361, 40103 for a well-formed message bound to something
else), and for having burned nothing: the genuine message with the same secret still logs in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import nacl.signing
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import MemoryUserStore, WalletAuth
from tests.conftest import (
    DOMAIN,
    OTHER_KEY,
    T0,
    URI,
    WALLET_KEY,
    FakeClock,
    client_for,
    sign_text,
)
from tests.helpers import get_secret, make_auth, siwe_text
from tests.security.support import assert_refused, assert_token, web3mq_login_body

NOW_MS = int(T0 * 1000)
USERID = "user:attack-message"
DEVICE = nacl.signing.SigningKey(bytes(range(196, 228)))
WEB3MQ_ROUTE = "/api/user_login/"


# -- helpers --------------------------------------------------------------------------------


def signed_siwe(account: LocalAccount, secret: str, content: str) -> dict[str, Any]:
    """``/login`` fields with ``content`` really signed by ``account``."""
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, content),
        "wallet_address": account.address,
        "signature_content": content,
    }


def genuine_text(account: LocalAccount, secret: str, **overrides: Any) -> str:
    settings: dict[str, Any] = {"address": account.address, "nonce": secret, "issued_at": T0}
    settings.update(overrides)
    return siwe_text(**settings)


async def refused_then_genuine(
    client: httpx.AsyncClient,
    account: LocalAccount,
    secret: str,
    tampered: str,
    status: int,
    code: int,
) -> None:
    """The tampered text is refused as documented; then the genuine text logs in, once."""
    genuine = genuine_text(account, secret)
    assert tampered != genuine
    assert_refused(
        await client.post("/login", json=signed_siwe(account, secret, tampered)), status, code
    )
    assert_token(await client.post("/login", json=signed_siwe(account, secret, genuine)))


def replace_line(text: str, prefix: str, new: str) -> str:
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(hits) == 1, (prefix, text)
    lines[hits[0]] = new
    return "\n".join(lines)


def insert_after(text: str, prefix: str, new: str) -> str:
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(hits) == 1, (prefix, text)
    lines.insert(hits[0] + 1, new)
    return "\n".join(lines)


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


# -- SIWE domain ----------------------------------------------------------------------------

#: (first-line origin, status, code). ASCII look-alikes are well-formed authorities bound to
#: another site (40103); anything non-ASCII is not EIP-4361 at all (40004).
DOMAIN_LOOK_ALIKES: dict[str, tuple[str, int, int]] = {
    "capitalised": ("Example.com", 401, 40103),
    "upper case": ("EXAMPLE.COM", 401, 40103),
    "trailing dot": ("example.com.", 401, 40103),
    "default port": ("example.com:443", 401, 40103),
    "other port": ("example.com:8443", 401, 40103),
    "empty port": ("example.com:", 401, 40103),
    "userinfo": ("user@example.com", 401, 40103),
    "site as userinfo of another": ("example.com@evil.example", 401, 40103),
    "subdomain": ("login.example.com", 401, 40103),
    "site as subdomain of another": ("example.com.evil.example", 401, 40103),
    "hyphenated prefix": ("evil-example.com", 401, 40103),
    "percent-encoded dot": ("example%2Ecom", 401, 40103),
    "punycode look-alike": ("xn--exmple-4nf.com", 401, 40103),
    "IPv6 loopback": ("[::1]", 401, 40103),
    "IPv4 address": ("127.0.0.1", 401, 40103),
    "Cyrillic a": ("ex\u0430mple.com", 400, 40004),
    "Cyrillic e": ("\u0435xample.com", 400, 40004),
    "Greek alpha": ("ex\u03b1mple.com", 400, 40004),
    "Greek omicron": ("example.c\u03bfm", 400, 40004),
    "fullwidth e": ("\uff45xample.com", 400, 40004),
    "zero-width space": ("example\u200b.com", 400, 40004),
    "trailing space": ("example.com ", 400, 40004),
    "empty": ("", 400, 40004),
}


@pytest.mark.parametrize("case", list(DOMAIN_LOOK_ALIKES))
async def test_siwe_domain_look_alike_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    origin, status, code = DOMAIN_LOOK_ALIKES[case]
    assert origin != DOMAIN
    secret = await get_secret(client, wallet.address)
    tampered = genuine_text(wallet, secret, domain=origin)
    await refused_then_genuine(client, wallet, secret, tampered, status, code)


SCHEME_PREFIXES: dict[str, tuple[str, int, int]] = {
    "http for an https site": ("http://example.com", 401, 40103),
    "upper-case scheme": ("HTTPS://example.com", 401, 40103),
    "websocket scheme": ("wss://example.com", 401, 40103),
    "ftp scheme": ("ftp://example.com", 401, 40103),
    "javascript scheme": ("javascript://example.com", 401, 40103),
    "right scheme, other host": ("https://evil.example", 401, 40103),
    "right scheme, other port": ("https://example.com:8443", 401, 40103),
    "one slash": ("https:/example.com", 400, 40004),
    "doubled colon": ("https:://example.com", 400, 40004),
}


@pytest.mark.parametrize("case", list(SCHEME_PREFIXES))
async def test_siwe_scheme_prefix_for_another_scheme_or_site_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    origin, status, code = SCHEME_PREFIXES[case]
    secret = await get_secret(client, wallet.address)
    tampered = genuine_text(wallet, secret, domain=origin)
    await refused_then_genuine(client, wallet, secret, tampered, status, code)


async def test_siwe_scheme_prefix_naming_this_site_is_the_only_prefix_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    # The control for the test above: the check is on the scheme, not on there being one.
    secret = await get_secret(client, wallet.address)
    text = genuine_text(wallet, secret, domain="https://example.com")
    assert text.startswith("https://example.com wants you")
    assert_token(await client.post("/login", json=signed_siwe(wallet, secret, text)))


# -- SIWE URI -------------------------------------------------------------------------------

URI_MISMATCHES: dict[str, tuple[str, int, int]] = {
    "trailing slash": ("https://example.com/", 401, 40103),
    "path": ("https://example.com/login", 401, 40103),
    "empty query": ("https://example.com?", 401, 40103),
    "empty fragment": ("https://example.com#", 401, 40103),
    "dot segment": ("https://example.com/../", 401, 40103),
    "http instead of https": ("http://example.com", 401, 40103),
    "upper-case scheme": ("HTTPS://example.com", 401, 40103),
    "upper-case host": ("https://EXAMPLE.com", 401, 40103),
    "default port": ("https://example.com:443", 401, 40103),
    "trailing dot": ("https://example.com.", 401, 40103),
    "userinfo": ("https://user@example.com", 401, 40103),
    "another site": ("https://evil.example", 401, 40103),
    "site as subdomain of another": ("https://example.com.evil.example", 401, 40103),
    "site inside another's path": ("https://evil.example/https://example.com", 401, 40103),
    "punycode look-alike": ("https://xn--exmple-4nf.com", 401, 40103),
    "Cyrillic look-alike": ("https://ex\u0430mple.com", 400, 40004),
}


@pytest.mark.parametrize("case", list(URI_MISMATCHES))
async def test_siwe_uri_mismatch_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    uri, status, code = URI_MISMATCHES[case]
    assert uri != URI
    secret = await get_secret(client, wallet.address)
    tampered = genuine_text(wallet, secret, uri=uri)
    await refused_then_genuine(client, wallet, secret, tampered, status, code)


# -- SIWE chain -----------------------------------------------------------------------------

CHAIN_MISMATCHES: dict[str, tuple[str, int, int]] = {
    "Goerli": ("5", 401, 40103),
    "Optimism": ("10", 401, 40103),
    "Polygon": ("137", 401, 40103),
    "Sepolia": ("11155111", 401, 40103),
    "largest chain id": (str(2**64 - 1), 401, 40103),
    "leading zero": ("01", 400, 40004),
    "plus sign": ("+1", 400, 40004),
    "negative": ("-1", 400, 40004),
    "zero": ("0", 400, 40004),
    "decimal point": ("1.0", 400, 40004),
    "hex": ("0x1", 400, 40004),
    "trailing space": ("1 ", 400, 40004),
    "beyond 64 bits": (str(2**64), 400, 40004),
}


@pytest.mark.parametrize("case", list(CHAIN_MISMATCHES))
async def test_siwe_message_for_another_chain_cannot_log_in(
    clock: FakeClock, wallet: LocalAccount, case: str
) -> None:
    chain, status, code = CHAIN_MISMATCHES[case]
    async with client_for(make_auth(clock, chain_ids={1})) as client:
        secret = await get_secret(client, wallet.address)
        tampered = replace_line(genuine_text(wallet, secret), "Chain ID: ", f"Chain ID: {chain}")
        await refused_then_genuine(client, wallet, secret, tampered, status, code)


# -- SIWE address and nonce -----------------------------------------------------------------


def _flip_one_letter(address: str) -> str:
    for i, ch in enumerate(address[2:], start=2):
        if ch.isalpha():
            return address[:i] + ch.swapcase() + address[i + 1 :]
    raise AssertionError("address has no letter")


ADDRESS_LINES: dict[str, tuple[Callable[[LocalAccount, LocalAccount], str], int, int]] = {
    "another wallet's address": (lambda w, o: o.address, 401, 40103),
    "own address in lower case": (lambda w, o: w.address.lower(), 400, 40004),
    "own address in upper case": (lambda w, o: "0x" + w.address[2:].upper(), 400, 40004),
    "own address with a broken checksum": (lambda w, o: _flip_one_letter(w.address), 400, 40004),
    "own address without 0x": (lambda w, o: w.address[2:], 400, 40004),
    "own address with a leading space": (lambda w, o: " " + w.address, 400, 40004),
    "own address and another": (lambda w, o: f"{w.address} {o.address}", 400, 40004),
}


@pytest.mark.parametrize("case", list(ADDRESS_LINES))
async def test_siwe_address_line_other_than_the_wallet_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount, case: str
) -> None:
    build, status, code = ADDRESS_LINES[case]
    secret = await get_secret(client, wallet.address)
    tampered = genuine_text(wallet, secret, address=build(wallet, other_wallet))
    await refused_then_genuine(client, wallet, secret, tampered, status, code)


NONCES: dict[str, tuple[Callable[[str, str], str], int, int]] = {
    "reversed secret": (lambda s, other: s[::-1], 401, 40103),
    "upper-case secret": (lambda s, other: s.upper(), 401, 40103),
    "secret with a digit appended": (lambda s, other: s + "0", 401, 40103),
    "secret minus its last character": (lambda s, other: s[:-1], 401, 40103),
    "another outstanding secret of the same wallet": (lambda s, other: other, 401, 40103),
    "secret with a trailing space": (lambda s, other: s + " ", 400, 40004),
    "secret with punctuation": (lambda s, other: s + "-", 400, 40004),
}


@pytest.mark.parametrize("case", list(NONCES))
async def test_siwe_nonce_other_than_the_secret_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    build, status, code = NONCES[case]
    secret = await get_secret(client, wallet.address)
    other = await get_secret(client, wallet.address)
    tampered = genuine_text(wallet, secret, nonce=build(secret, other))
    await refused_then_genuine(client, wallet, secret, tampered, status, code)
    # The other outstanding secret was not burned either.
    text = genuine_text(wallet, other)
    assert_token(await client.post("/login", json=signed_siwe(wallet, other, text)))


# -- SIWE smuggled lines --------------------------------------------------------------------

SMUGGLED: dict[str, Callable[[str, str], str]] = {
    "extra line at the end": lambda t, s: t + "\nEvil: yes",
    "trailing newline": lambda t, s: t + "\n",
    "blank line then a URI at the end": lambda t, s: t + "\n\nURI: https://evil.example",
    "extra line between fields": lambda t, s: insert_after(t, "Version: ", "Evil: yes"),
    "second statement line": lambda t, s: insert_after(t, "Sign in to", "Also send 1 ETH"),
    "leading blank line": lambda t, s: "\n" + t,
    "duplicated Issued At": lambda t, s: insert_after(t, "Issued At: ", t.split("\n")[-1]),
    "fields out of order": lambda t, s: "\n".join(
        [*t.split("\n")[:-2], t.split("\n")[-1], t.split("\n")[-2]]
    ),
    "two URI lines": lambda t, s: insert_after(t, "URI: ", "URI: https://evil.example"),
    "CRLF line ends": lambda t, s: t.replace("\n", "\r\n"),
    "one CRLF line end": lambda t, s: t.replace("\nVersion", "\r\nVersion"),
    "trailing CR": lambda t, s: t + "\r",
    "CR inside the statement": lambda t, s: t.replace(
        "Sign in to Example", "Sign in to Example\rURI: https://evil.example"
    ),
    "Unicode line separator": lambda t, s: t.replace(
        "Sign in to Example", "Sign in to Example\u2028URI: https://evil.example"
    ),
    "two Nonce lines, the secret first": lambda t, s: insert_after(
        t, "Nonce: ", "Nonce: " + "0" * 40
    ),
    "two Nonce lines, the secret second": lambda t, s: replace_line(
        t, "Nonce: ", f"Nonce: {'0' * 40}\nNonce: {s}"
    ),
    "the same Nonce line twice": lambda t, s: insert_after(t, "Nonce: ", f"Nonce: {s}"),
    "a second Nonce line at the end": lambda t, s: t + f"\nNonce: {s}",
}


@pytest.mark.parametrize("case", list(SMUGGLED))
async def test_siwe_message_with_smuggled_lines_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    secret = await get_secret(client, wallet.address)
    tampered = SMUGGLED[case](genuine_text(wallet, secret), secret)
    await refused_then_genuine(client, wallet, secret, tampered, 400, 40004)


# -- Web3MQ signature_content ---------------------------------------------------------------


def web3mq_body(
    account: LocalAccount, edit: Callable[[str, str], str] | None = None
) -> dict[str, Any]:
    """A Web3MQ login body whose content may be edited (``edit(content, nonce)``) before signing."""
    return web3mq_login_body(account, device=DEVICE, userid=USERID, indented=True, edit=edit)


def _web3mq_line(prefix: str, new: str | None) -> Callable[[str, str], str]:
    def edit(content: str, nonce: str) -> str:
        lines = content.split("\n")
        hits = [i for i, line in enumerate(lines) if line.strip().startswith(prefix)]
        assert len(hits) == 1
        if new is None:
            del lines[hits[0]]
        else:
            lines[hits[0]] = new
        return "\n".join(lines)

    return edit


def _web3mq_address(new: Callable[[str, str], str]) -> Callable[[str, str], str]:
    """Replace the address line (``new(own, other)``)."""
    own, other = Account.from_key(WALLET_KEY).address, Account.from_key(OTHER_KEY).address
    return _web3mq_line("0x", new(own, other))


WEB3MQ_CONTENTS: dict[str, Callable[[str, str], str]] = {
    "two Nonce lines, the same value": lambda c, n: c + f"\n    Nonce: {n}",
    "two Nonce lines, one forged": lambda c, n: c + "\nNonce: " + "0" * 56,
    "a forged Nonce before the real one": lambda c, n: "Nonce: " + "0" * 56 + "\n" + c,
    "another Nonce": _web3mq_line("Nonce:", "    Nonce: " + "0" * 56),
    "Nonce in upper case": lambda c, n: c.replace(f"Nonce: {n}", f"Nonce: {n.upper()}"),
    "no Nonce line": _web3mq_line("Nonce:", None),
    "another wallet's address line": _web3mq_address(lambda own, other: f"    {other}"),
    "address only inside another line": _web3mq_address(lambda own, other: f"    Sign in as {own}"),
    "address with a suffix on its line": _web3mq_address(lambda own, other: f"    {own} (main)"),
    "address without 0x": _web3mq_address(lambda own, other: f"    {own[2:]}"),
    "no address line": _web3mq_line("0x", None),
    "URI line for another site": _web3mq_line("URI:", "    URI: https://evil.example"),
    "URI line with a trailing slash": _web3mq_line("URI:", f"    URI: {URI}/"),
    "URI line with the site as a subdomain": _web3mq_line(
        "URI:", "    URI: https://example.com.evil.example"
    ),
    "URI line in lower case only": _web3mq_line("URI:", f"    uri: {URI}"),
    "two URI lines, both right": lambda c, n: c + f"\n    URI: {URI}",
    "two URI lines, one for another site": lambda c, n: c + "\n    URI: https://evil.example",
    "no URI line": _web3mq_line("URI:", None),
}


@pytest.mark.parametrize("case", list(WEB3MQ_CONTENTS))
async def test_web3mq_content_not_naming_this_login_cannot_log_in(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    genuine = web3mq_body(wallet)
    tampered = web3mq_body(wallet, WEB3MQ_CONTENTS[case])
    assert tampered["signature_content"] != genuine["signature_content"]
    assert_refused(await client.post(WEB3MQ_ROUTE, json=tampered), 401, 40103)
    store = auth.user_store
    assert isinstance(store, MemoryUserStore) and len(store) == 0
    # Nothing stored and nothing burned: the genuine content with this NonceContent still works.
    assert_token(await client.post(WEB3MQ_ROUTE, json=genuine))
