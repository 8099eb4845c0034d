"""EIP-4361 messages: conformance vectors, strict parsing, exact rendering and verification."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from asgi_wallet_auth import siwe as siwe_module
from asgi_wallet_auth.errors import (
    InvalidMessage,
    InvalidSignatureFormat,
    MessageExpired,
    MessageRejected,
    SignatureMismatch,
    WalletAuthError,
)
from asgi_wallet_auth.signatures import SECP256K1_N, recover_address, to_checksum_address
from asgi_wallet_auth.siwe import (
    MAX_CHAIN_ID,
    MAX_MESSAGE_LENGTH,
    SiweError,
    SiweMessage,
    format_rfc3339,
    parse_rfc3339,
)

# The spruceid/siwe conformance vectors, copied unchanged with their licence notice.
VECTORS = Path(__file__).resolve().parent / "vectors" / "siwe"
#: Case counts documented in the vectors' README; a short or empty file must not pass silently.
VECTOR_COUNTS = {
    "parsing_positive.json": 19,
    "parsing_negative.json": 29,
    "parsing_negative_objects.json": 18,
    "verification_positive.json": 4,
    "verification_negative.json": 10,
    "eip1271.json": 2,
}
#: camelCase field names of the vector files -> attribute names.
CAMEL = {
    "scheme": "scheme",
    "domain": "domain",
    "address": "address",
    "statement": "statement",
    "uri": "uri",
    "version": "version",
    "chainId": "chain_id",
    "nonce": "nonce",
    "issuedAt": "issued_at",
    "expirationTime": "expiration_time",
    "notBefore": "not_before",
    "requestId": "request_id",
    "resources": "resources",
}
#: Keys of the verification vectors that are test inputs, not message fields.
VERIFICATION_KEYS = {"signature", "time", "domainBinding", "matchNonce"}

KEY = "0x" + "0123456789abcdef" * 4
OTHER_KEY = "0x" + "fedcba9876543210" * 4
WALLET = Account.from_key(KEY)
OTHER = Account.from_key(OTHER_KEY)
ADDRESS = WALLET.address
#: 2026-01-01T00:00:00Z, the Issued At of the hand-written message below.
T0 = 1_767_225_600.0

BASE_LINES = [
    "example.com wants you to sign in with your Ethereum account:",
    ADDRESS,
    "",
    "Sign in to Example",
    "",
    "URI: https://example.com/login",
    "Version: 1",
    "Chain ID: 1",
    "Nonce: abcdef12345678",
    "Issued At: 2026-01-01T00:00:00.000Z",
    "Expiration Time: 2026-01-01T00:10:00.000Z",
    "Not Before: 2025-12-31T23:59:00.000Z",
    "Request ID: req-1",
    "Resources:",
    "- https://example.com/a",
    "- ipfs://bafy/b",
]
FULL = "\n".join(BASE_LINES)
# Indices of BASE_LINES, by name.
HEADER, ADDR, BLANK1, STATEMENT, BLANK2, URI, VERSION, CHAIN, NONCE, ISSUED = range(10)
EXPIRATION, NOT_BEFORE, REQUEST_ID, RESOURCES, RESOURCE_A, RESOURCE_B = range(10, 16)
MINIMAL = "\n".join(BASE_LINES[: ISSUED + 1])


def text_with(index: int, line: str) -> str:
    """FULL with line ``index`` replaced."""
    lines = list(BASE_LINES)
    lines[index] = line
    return "\n".join(lines)


def text_without(index: int) -> str:
    return "\n".join(BASE_LINES[:index] + BASE_LINES[index + 1 :])


def text_swapped(i: int, j: int) -> str:
    lines = list(BASE_LINES)
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def text_duplicated(index: int) -> str:
    return "\n".join(BASE_LINES[: index + 1] + BASE_LINES[index:])


def sign(account: Any, text: str) -> str:
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


def bindings(message: SiweMessage, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``validate`` that the message itself satisfies at ``T0``."""
    values: dict[str, Any] = {
        "domain": message.domain,
        "uri": message.uri,
        "nonce": message.nonce,
        "address": message.address,
        "chain_ids": {message.chain_id},
        "now": T0,
        "skew": 60.0,
    }
    values.update(overrides)
    return values


def verify_bindings(message: SiweMessage, **overrides: Any) -> dict[str, Any]:
    values = bindings(message, **overrides)
    del values["address"]
    return values


# ----------------------------------------------------------------------- conformance vectors


def vector_cases(file_name: str) -> list[Any]:
    """One param per vector (id = its name); the files ship with the tests (tests/vectors)."""
    path = VECTORS / file_name
    cases = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(name, case, id=name) for name, case in cases.items()]


def message_fields(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k not in VERIFICATION_KEYS}


def vector_now(case: dict[str, Any], message: SiweMessage) -> float:
    # Where a vector names no ``time``, verify at its Issued At: the instant the message was
    # made, which lies inside the validity window of every positive vector without ``time``
    # (none has a Not Before later than its Issued At) and keeps the suite independent of the
    # real clock.
    return parse_rfc3339(case["time"]) if "time" in case else parse_rfc3339(message.issued_at)


@pytest.mark.parametrize(("file_name", "count"), sorted(VECTOR_COUNTS.items()))
def test_vector_files_hold_the_documented_number_of_cases(file_name: str, count: int) -> None:
    path = VECTORS / file_name
    assert len(json.loads(path.read_text(encoding="utf-8"))) == count


@pytest.mark.parametrize(("name", "case"), vector_cases("parsing_positive.json"))
def test_positive_vector_parses_to_its_fields_and_renders_back(name: str, case: Any) -> None:
    fields = case["fields"]
    assert set(fields) <= set(CAMEL), "a vector field this test does not know"
    parsed = SiweMessage.parse(case["message"])
    for camel, attribute in CAMEL.items():
        expected = fields.get(camel)
        if camel == "resources" and expected is not None:
            expected = tuple(expected)
        assert getattr(parsed, attribute) == expected, attribute
    built = SiweMessage.from_fields(fields)
    assert built == parsed
    assert str(built) == case["message"]
    assert str(parsed) == case["message"]


@pytest.mark.parametrize(("name", "text"), vector_cases("parsing_negative.json"))
def test_negative_vector_is_refused_by_the_parser(name: str, text: Any) -> None:
    with pytest.raises(SiweError) as info:
        SiweMessage.parse(text)
    assert_no_echo(str(info.value), text)


@pytest.mark.parametrize(("name", "fields"), vector_cases("parsing_negative_objects.json"))
def test_negative_object_vector_is_refused_when_building(name: str, fields: Any) -> None:
    with pytest.raises(SiweError):
        SiweMessage.from_fields(fields)
    snake = {CAMEL[k]: v for k, v in fields.items()}
    missing = {"domain", "address", "uri", "version", "chain_id", "nonce", "issued_at"} - set(snake)
    # The constructor refuses too: a missing required field is Python's own TypeError.
    with pytest.raises(TypeError if missing else SiweError):
        SiweMessage(**snake)


@pytest.mark.parametrize(("name", "case"), vector_cases("verification_positive.json"))
def test_positive_verification_vector_verifies(name: str, case: Any) -> None:
    message = SiweMessage.from_fields(message_fields(case))
    now = vector_now(case, message)
    assert recover_address(str(message).encode("utf-8"), case["signature"]) == message.address
    message.verify(case["signature"], **verify_bindings(message, now=now))
    # Same again through the parser: the signed text is exactly our rendering.
    SiweMessage.parse(str(message)).verify(case["signature"], **verify_bindings(message, now=now))


def test_the_issuance_rule_is_stricter_than_the_vectors() -> None:
    # The positive vector "expired message" verifies at 2020-01-05, two years before its Issued
    # At (2022-01-05), and its Expiration Time (2021-01-05) precedes its Issued At. EIP-4361
    # verification accepts that; the login service's extra issuance rule refuses it.
    path = VECTORS / "verification_positive.json"
    case = json.loads(path.read_text(encoding="utf-8"))["expired message"]
    message = SiweMessage.from_fields(message_fields(case))
    now = vector_now(case, message)
    message.verify(case["signature"], **verify_bindings(message, now=now))
    with pytest.raises(MessageExpired, match="Issued At is in the future"):
        message.check_issuance(now=now)
    with pytest.raises(MessageExpired, match="Expiration Time is not after its Issued At"):
        message.check_issuance(now=parse_rfc3339(message.issued_at))


#: Why each negative verification vector must fail: (exception type, text in its message).
NEGATIVE_VERIFICATION: dict[str, tuple[type[WalletAuthError], str]] = {
    "expired message": (MessageExpired, "has expired"),
    "domain binding": (MessageRejected, "domain"),
    "custom time": (MessageExpired, "has expired"),
    "custom nonce": (MessageRejected, "nonce"),
    "malformed signature": (InvalidSignatureFormat, "signature"),
    "wrong signature": (SignatureMismatch, "signature"),
    "not yet valid": (MessageExpired, "not yet valid"),
    "invalid issuedAt": (SiweError, "Issued At is an impossible calendar date"),
    "invalid notBefore": (SiweError, "Not Before is an impossible calendar date"),
    "invalid expirationTime": (SiweError, "Expiration Time is an impossible calendar date"),
}


@pytest.mark.parametrize(("name", "case"), vector_cases("verification_negative.json"))
def test_negative_verification_vector_fails_for_its_reason(name: str, case: Any) -> None:
    assert name in NEGATIVE_VERIFICATION, "a new vector: state why it must fail"
    expected_type, reason = NEGATIVE_VERIFICATION[name]

    def attempt() -> SiweMessage:
        message = SiweMessage.from_fields(message_fields(case))
        message.verify(
            case["signature"],
            # "domain binding" expects example.com while the message names login.xyz;
            # "custom nonce" expects another nonce than the message carries.
            domain=case.get("domainBinding", message.domain),
            uri=message.uri,
            nonce=case.get("matchNonce", message.nonce),
            chain_ids={message.chain_id},
            now=vector_now(case, message),
        )
        return message

    with pytest.raises(WalletAuthError) as info:
        attempt()
    assert type(info.value) is expected_type
    assert reason in str(info.value)
    if expected_type in (MessageExpired, MessageRejected):
        # The refusal is the binding or the time, not the signature: it really is by the address.
        message = SiweMessage.from_fields(message_fields(case))
        assert recover_address(str(message).encode(), case["signature"]) == message.address


@pytest.mark.parametrize(("name", "case"), vector_cases("eip1271.json"))
def test_contract_wallet_signature_is_refused_cleanly(name: str, case: Any) -> None:
    message = SiweMessage.parse(case["message"])
    assert str(message) == case["message"]
    with pytest.raises((SignatureMismatch, InvalidSignatureFormat)):
        message.verify(
            case["signature"],
            **verify_bindings(message, chain_ids=None, now=parse_rfc3339(message.issued_at)),
        )


# ------------------------------------------------------------------------------ strict parse


def assert_no_echo(error: str, text: object) -> None:
    """The error names a field or line, never the client's text."""
    if isinstance(text, str):
        for line in text.split("\n"):
            if len(line) >= 12:
                assert line not in error
    assert ADDRESS not in error and ADDRESS.lower() not in error


def test_the_hand_written_messages_are_valid() -> None:
    full = SiweMessage.parse(FULL)
    assert str(full) == FULL
    assert full.address == ADDRESS
    assert full.statement == "Sign in to Example"
    assert full.chain_id == 1
    assert full.request_id == "req-1"
    assert full.resources == ("https://example.com/a", "ipfs://bafy/b")
    minimal = SiweMessage.parse(MINIMAL)
    assert str(minimal) == MINIMAL
    assert minimal.expiration_time is None and minimal.not_before is None
    assert minimal.request_id is None and minimal.resources is None


BAD_TIMES = [
    "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:60:00Z",
    "2026-12-31T23:59:60Z",
    "2026-01-01T00:00:00",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00Z",
    "26-01-01T00:00:00Z",
    "2026-1-01T00:00:00Z",
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+01:60",
    "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00ZZ",
    "2026-01-01T00:00:00 Z",
    "Wed Oct 05 2011 16:48:00 GMT+0200",
    "1767225600",
    "",
]
BAD_URIS = [
    "not a uri",
    "example.com/login",
    "//example.com/login",
    "1https://example.com",
    "https://exa mple.com",
    "https://example.com/a b",
    "https://example.com/%zz",
    "https://example.com/%4",
    "https://example.com/<x>",
    'https://example.com/"x"',
    "https://example.com/a#b#c",
    "https://example.com:80a/",
    "https://[::1",
    "https://[zz::1]/",
    "https://[::1%25eth0]/",
    "https://[::1]x/",
    "https://ex{ample}.com",
    ":no-scheme",
    "",
]
BAD_DOMAINS = [
    "",
    "example.com/login",
    "example.com?x",
    "#example",
    "example.com:80a",
    "[::1",
    "[not-ip]",
    "user@",
    "ex%zzample.com",
    "exa^mple.com",
    "http:///example.com",
    "://example.com",
    "1http://example.com",
    "ht tp://example.com",
]


def _parse_negatives() -> list[Any]:
    cases: list[tuple[str, str]] = [
        ("crlf line endings", FULL.replace("\n", "\r\n")),
        ("one crlf line", text_with(VERSION, "Version: 1\r")),
        ("trailing newline", FULL + "\n"),
        ("trailing newline minimal", MINIMAL + "\n"),
        ("leading newline", "\n" + FULL),
        ("two trailing newlines", FULL + "\n\n"),
        ("trailing space on a line", text_with(VERSION, "Version: 1 ")),
        ("extra unknown line at end", FULL + "\nFoo: bar"),
        ("extra unknown line inside", text_with(NONCE, BASE_LINES[NONCE] + "\nFoo: bar")),
        ("empty statement line", "\n".join([*BASE_LINES[:3], "", *BASE_LINES[3:]])),
        ("two statement lines", text_with(STATEMENT, "Sign in\nto Example")),
        ("blank line before uri missing", text_without(BLANK2)),
        ("empty resources line has a space", text_with(RESOURCES, "Resources: ")),
        ("resource without space", text_with(RESOURCE_A, "-https://example.com/a")),
        ("resource with two spaces", text_with(RESOURCE_A, "-  https://example.com/a")),
        ("empty resource", text_with(RESOURCE_A, "- ")),
        ("blank line among resources", text_with(RESOURCE_A, "")),
        ("request id with slash", text_with(REQUEST_ID, "Request ID: a/b")),
        ("request id with space", text_with(REQUEST_ID, "Request ID: a b")),
        ("request id bad percent", text_with(REQUEST_ID, "Request ID: a%zz")),
        (
            "header lower case",
            text_with(HEADER, "example.com wants you to sign in with your ethereum account:"),
        ),
        (
            "header without colon",
            text_with(HEADER, "example.com wants you to sign in with your Ethereum account"),
        ),
        ("tag lower case", text_with(URI, "uri: https://example.com/login")),
        ("tag without space", text_with(URI, "URI:https://example.com/login")),
        ("address lower case", text_with(ADDR, ADDRESS.lower())),
        ("address upper case", text_with(ADDR, "0x" + ADDRESS[2:].upper())),
        ("address 0X prefix", text_with(ADDR, "0X" + ADDRESS[2:])),
        ("address 39 digits", text_with(ADDR, ADDRESS[:-1])),
        ("address 41 digits", text_with(ADDR, ADDRESS + "0")),
        ("address not hex", text_with(ADDR, ADDRESS[:-1] + "g")),
        ("address with space", text_with(ADDR, " " + ADDRESS)),
        ("version 2", text_with(VERSION, "Version: 2")),
        ("version 01", text_with(VERSION, "Version: 01")),
        ("version 1.0", text_with(VERSION, "Version: 1.0")),
        ("version empty", text_with(VERSION, "Version: ")),
        ("nonce 7 chars", text_with(NONCE, "Nonce: abc1234")),
        ("nonce with dash", text_with(NONCE, "Nonce: abcd-1234")),
        ("nonce with space", text_with(NONCE, "Nonce: abcd 1234")),
        ("nonce empty", text_with(NONCE, "Nonce: ")),
        ("statement with percent", text_with(STATEMENT, "I am 100% sure")),
        ("statement with double quote", text_with(STATEMENT, 'Say "hi"')),
        ("statement with tab", text_with(STATEMENT, "Sign\tin")),
        ("statement with DEL", text_with(STATEMENT, "Sign\x7fin")),
        ("statement with NUL", text_with(STATEMENT, "Sign\x00in")),
        ("statement non-ascii", text_with(STATEMENT, "Connexion à Example")),
        ("statement line separator", text_with(STATEMENT, "Sign\u2028in")),
        ("statement NEL", text_with(STATEMENT, "Sign\x85in")),
        ("control char in nonce", text_with(NONCE, "Nonce: abcdef12\x0b345678")),
        ("form feed", text_with(URI, "URI: https://example.com/login\x0c")),
    ]
    for index in (HEADER, ADDR, BLANK1, BLANK2, URI, VERSION, CHAIN, NONCE, ISSUED, RESOURCES):
        cases.append((f"line {index + 1} missing", text_without(index)))
    for index in (
        URI,
        VERSION,
        CHAIN,
        NONCE,
        ISSUED,
        EXPIRATION,
        NOT_BEFORE,
        REQUEST_ID,
        RESOURCES,
    ):
        cases.append((f"line {index + 1} duplicated", text_duplicated(index)))
    for i, j in [
        (URI, VERSION),
        (VERSION, CHAIN),
        (CHAIN, NONCE),
        (NONCE, ISSUED),
        (ISSUED, EXPIRATION),
        (EXPIRATION, NOT_BEFORE),
        (NOT_BEFORE, REQUEST_ID),
        (REQUEST_ID, RESOURCES),
        (STATEMENT, URI),
    ]:
        cases.append((f"lines {i + 1} and {j + 1} swapped", text_swapped(i, j)))
    letters = [position for position in range(2, 42) if ADDRESS[position].isalpha()]
    assert letters  # the fixed address has letters, so its case carries a checksum
    for position in letters:
        char = ADDRESS[position]
        flipped = ADDRESS[:position] + char.swapcase() + ADDRESS[position + 1 :]
        cases.append((f"address case flipped at {position}", text_with(ADDR, flipped)))
    for value in ["01", "+1", "-1", "1a", "", " 1", "1 ", "0", "1" * 21, str(2**64), "0x1", "1.0"]:
        cases.append((f"chain id {value!r}", text_with(CHAIN, f"Chain ID: {value}")))
    for value in BAD_TIMES:
        for index, tag in (
            (ISSUED, "Issued At"),
            (EXPIRATION, "Expiration Time"),
            (NOT_BEFORE, "Not Before"),
        ):
            cases.append((f"{tag} {value!r}", text_with(index, f"{tag}: {value}")))
    for value in BAD_URIS:
        cases.append((f"uri {value!r}", text_with(URI, f"URI: {value}")))
        cases.append((f"resource {value!r}", text_with(RESOURCE_B, f"- {value}")))
    for value in BAD_DOMAINS:
        cases.append((f"domain {value!r}", text_with(HEADER, f"{value}{BASE_LINES[HEADER][11:]}")))
    return [pytest.param(text, id=name) for name, text in cases]


@pytest.mark.parametrize("text", _parse_negatives())
def test_non_conforming_message_is_refused(text: str) -> None:
    with pytest.raises(SiweError) as info:
        SiweMessage.parse(text)
    assert_no_echo(str(info.value), text)


def test_errors_say_which_line_or_field_is_wrong() -> None:
    cases = {
        FULL.replace("\n", "\r\n"): "line 1 ends with CR",
        FULL + "\n": "must not end with a line break",
        text_with(CHAIN, "Chain ID: 01"): "Chain ID",
        text_with(NONCE, "Nonce: short"): "Nonce",
        text_with(ADDR, ADDRESS.lower()): "EIP-55",
        text_with(
            ISSUED, "Issued At: 2026-02-30T00:00:00Z"
        ): "Issued At is an impossible calendar date",
        text_with(EXPIRATION, "Expiration Time: soon"): "Expiration Time",
        text_swapped(URI, VERSION): "line 6 must start with 'URI: '",
        text_duplicated(NONCE): "line 10 must start with 'Issued At: '",
        text_duplicated(EXPIRATION): "line 12 is not expected here",
        text_with(STATEMENT, "Sign\x00in"): "line 4 contains a control or non-ASCII character",
        text_with(URI, "URI: nope"): "URI",
        text_with(RESOURCE_B, "- nope"): "resource",
    }
    for text, expected in cases.items():
        with pytest.raises(SiweError) as info:
            SiweMessage.parse(text)
        assert expected in str(info.value)


@pytest.mark.parametrize(
    "value", [None, 5, b"example.com wants you", bytearray(b"x"), ["a"], {"a": 1}]
)
def test_non_string_input_is_refused(value: object) -> None:
    with pytest.raises(SiweError, match="must be a string"):
        SiweMessage.parse(value)  # type: ignore[arg-type]


def test_input_length_is_capped() -> None:
    padding = MAX_MESSAGE_LENGTH - len(FULL) + len("Sign in to Example")
    at_limit = text_with(STATEMENT, "x" * padding)
    assert len(at_limit) == MAX_MESSAGE_LENGTH
    assert str(SiweMessage.parse(at_limit)) == at_limit
    with pytest.raises(SiweError, match=f"longer than {MAX_MESSAGE_LENGTH} characters"):
        SiweMessage.parse(text_with(STATEMENT, "x" * (padding + 1)))
    with pytest.raises(SiweError, match="longer than"):
        SiweMessage.parse("x" * 1_000_000)
    # Built from fields, the rendered message obeys the same cap, so it can always be parsed.
    base = SiweMessage.parse(at_limit)
    with pytest.raises(SiweError, match="longer than"):
        dataclasses.replace(base, resources=(*(base.resources or ()), "a:b"))
    shorter = dataclasses.replace(base, request_id=None, resources=(*(base.resources or ()), "a:b"))
    assert len(str(shorter)) <= MAX_MESSAGE_LENGTH
    assert SiweMessage.parse(str(shorter)) == shorter


POSITIVE_TEXTS = {
    "no statement": "\n".join([*BASE_LINES[:3], *BASE_LINES[4:]]),
    "scheme": text_with(HEADER, "https://" + BASE_LINES[HEADER]),
    "custom scheme": text_with(HEADER, "my-app+x.1://" + BASE_LINES[HEADER]),
    "port": text_with(HEADER, "localhost:8000" + BASE_LINES[HEADER][11:]),
    "userinfo": text_with(HEADER, "user:pw@example.com" + BASE_LINES[HEADER][11:]),
    "ipv6 domain": text_with(HEADER, "[2001:db8::1]:8443" + BASE_LINES[HEADER][11:]),
    "ipv4-mapped ipv6": text_with(HEADER, "[::ffff:192.0.2.1]" + BASE_LINES[HEADER][11:]),
    "ipvfuture domain": text_with(HEADER, "[v1.fe80::a+en1]" + BASE_LINES[HEADER][11:]),
    "percent-encoded host": text_with(HEADER, "ex%41mple.com" + BASE_LINES[HEADER][11:]),
    "every statement character": text_with(
        STATEMENT, "Az09 -._~ :/?#[]@ !$&'()*+,;= " + string.ascii_letters
    ),
    "statement of one space": text_with(STATEMENT, " "),
    "urn uri": text_with(URI, "URI: urn:isbn:0451450523"),
    "mailto uri": text_with(URI, "URI: mailto:a@example.com"),
    "file uri with empty authority": text_with(URI, "URI: file:///etc/hosts"),
    "query and fragment": text_with(URI, "URI: https://example.com/?a=b&c=%20d#frag/?x"),
    "uri with ipv6 and port": text_with(URI, "URI: https://[::1]:8443/login"),
    "chain id max": text_with(CHAIN, f"Chain ID: {MAX_CHAIN_ID}"),
    "chain id 137": text_with(CHAIN, "Chain ID: 137"),
    "long nonce": text_with(NONCE, "Nonce: " + "aZ9" * 40),
    "lower case t and z": text_with(ISSUED, "Issued At: 2026-01-01t00:00:00z"),
    "offset": text_with(ISSUED, "Issued At: 2026-01-01T05:30:00+05:30"),
    "negative zero offset": text_with(ISSUED, "Issued At: 2026-01-01T00:00:00-00:00"),
    "nine fraction digits": text_with(ISSUED, "Issued At: 2026-01-01T00:00:00.123456789Z"),
    "leap day": text_with(ISSUED, "Issued At: 2024-02-29T12:00:00Z"),
    "century leap day": text_with(ISSUED, "Issued At: 2000-02-29T12:00:00Z"),
    "empty request id": text_with(REQUEST_ID, "Request ID: "),
    "request id pchars": text_with(REQUEST_ID, "Request ID: a:b@c!$&'()*+,;=%41-._~"),
    "no resources listed": "\n".join(BASE_LINES[: RESOURCES + 1]),
    "only request id": "\n".join([*BASE_LINES[: ISSUED + 1], BASE_LINES[REQUEST_ID]]),
    "only resources": "\n".join([*BASE_LINES[: ISSUED + 1], *BASE_LINES[RESOURCES:]]),
    "repeated resource": text_with(RESOURCE_B, BASE_LINES[RESOURCE_A]),
}


@pytest.mark.parametrize("text", list(POSITIVE_TEXTS.values()), ids=list(POSITIVE_TEXTS))
def test_conforming_message_parses_and_renders_back_exactly(text: str) -> None:
    message = SiweMessage.parse(text)
    assert str(message) == text
    assert SiweMessage.parse(str(message)) == message
    assert dataclasses.replace(message) == message  # construction accepts what parsing accepts


def test_parsed_fields_are_the_text_values() -> None:
    scheme = SiweMessage.parse(POSITIVE_TEXTS["scheme"])
    assert (scheme.scheme, scheme.domain) == ("https", "example.com")
    plain = SiweMessage.parse(FULL)
    assert plain.scheme is None
    assert SiweMessage.parse(POSITIVE_TEXTS["no statement"]).statement is None
    assert SiweMessage.parse(POSITIVE_TEXTS["chain id max"]).chain_id == 2**64 - 1
    assert SiweMessage.parse(POSITIVE_TEXTS["empty request id"]).request_id == ""
    assert SiweMessage.parse(POSITIVE_TEXTS["no resources listed"]).resources == ()
    userinfo = SiweMessage.parse(POSITIVE_TEXTS["userinfo"])
    assert userinfo.domain == "user:pw@example.com" and userinfo.scheme is None


def test_round_trip_over_generated_messages() -> None:
    rng = random.Random(4361)
    domains = ["example.com", "localhost:8000", "127.0.0.1:8080", "[::1]", "a.b.c.example", "u@h"]
    uris = ["https://example.com", "https://example.com/login?x=1#y", "urn:x:y", "ipfs://bafy/z"]
    statement_chars = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;= "
    for _ in range(300):
        when = rng.uniform(0, 4_102_444_800)  # 1970 .. 2100
        stamp = format_rfc3339(when)
        if rng.random() < 0.3:
            stamp = dt.datetime.fromtimestamp(
                int(when), dt.timezone(dt.timedelta(minutes=rng.randrange(-720, 841, 15)))
            ).isoformat()
        body = rng.randbytes(20).hex()
        fields: dict[str, Any] = {
            "scheme": rng.choice([None, "https", "http"]),
            "domain": rng.choice(domains),
            "address": to_checksum_address(body),
            "statement": rng.choice(
                [None, "".join(rng.choices(statement_chars, k=rng.randint(1, 80)))]
            ),
            "uri": rng.choice(uris),
            "version": "1",
            "chain_id": rng.choice([1, 5, 137, 42161, rng.randint(1, MAX_CHAIN_ID)]),
            "nonce": "".join(
                rng.choices(string.ascii_letters + string.digits, k=rng.randint(8, 40))
            ),
            "issued_at": stamp,
            "expiration_time": rng.choice([None, stamp]),
            "not_before": rng.choice([None, stamp]),
            "request_id": rng.choice([None, "", "req-" + str(rng.randint(0, 10**9))]),
            "resources": rng.choice([None, (), tuple(rng.sample(uris, rng.randint(1, 3)))]),
        }
        message = SiweMessage(**fields)
        text = str(message)
        again = SiweMessage.parse(text)
        assert again == message
        assert str(again) == text


# ------------------------------------------------------------------------- building from fields


def valid_fields() -> dict[str, Any]:
    return {
        "domain": "example.com",
        "address": ADDRESS,
        "statement": "Sign in to Example",
        "uri": "https://example.com/login",
        "version": "1",
        "chainId": 1,
        "nonce": "abcdef12345678",
        "issuedAt": "2026-01-01T00:00:00.000Z",
        "expirationTime": "2026-01-01T00:10:00.000Z",
        "notBefore": "2025-12-31T23:59:00.000Z",
        "requestId": "req-1",
        "resources": ["https://example.com/a", "ipfs://bafy/b"],
    }


def test_from_fields_accepts_camel_and_snake_case() -> None:
    camel = SiweMessage.from_fields(valid_fields())
    snake = SiweMessage.from_fields({CAMEL[k]: v for k, v in valid_fields().items()})
    assert camel == snake == SiweMessage.parse(FULL)
    assert camel.resources == ("https://example.com/a", "ipfs://bafy/b")  # a list becomes a tuple
    assert str(camel) == FULL


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"chain_id": 1}, "given twice"),
        ({"unexpectedField": "x"}, "unknown field"),
        ({"chainId": "1"}, "Chain ID must be an integer"),
        ({"chainId": True}, "Chain ID must be an integer"),
        ({"chainId": 1.0}, "Chain ID must be an integer"),
        ({"chainId": 0}, "Chain ID must be between"),
        ({"chainId": 2**64}, "Chain ID must be between"),
        ({"version": 1}, "Version must be 1"),
        ({"version": None}, "version is required"),
        ({"nonce": None}, "nonce is required"),
        ({"resources": "https://example.com"}, "resources must be a list"),
        ({"resources": [1]}, "resource is not an RFC 3986 URI"),
        ({"statement": ""}, "statement must be non-empty"),
        ({"statement": "two\nlines"}, "must not contain a line break"),
        ({"statement": 5}, "statement must be a string"),
        ({"domain": b"example.com"}, "domain must be a string"),
        ({"scheme": ""}, "scheme"),
        ({"scheme": "ht tp"}, "scheme"),
        ({"issuedAt": 1767225600}, "Issued At is not an RFC 3339 date-time"),
        ({"notBefore": "2026-02-29T00:00:00Z"}, "Not Before is an impossible calendar date"),
        ({"requestId": "a\nb"}, "Request ID"),
        ({"address": "0x" + ADDRESS[2:].lower()}, "EIP-55"),
    ],
)
def test_from_fields_refuses_bad_fields(change: dict[str, Any], expected: str) -> None:
    fields = valid_fields()
    fields.update(change)
    with pytest.raises(SiweError, match=expected) as info:
        SiweMessage.from_fields(fields)
    assert "unexpectedField" not in str(info.value)


def test_from_fields_refuses_a_non_mapping() -> None:
    with pytest.raises(SiweError, match="mapping"):
        SiweMessage.from_fields([("domain", "example.com")])  # type: ignore[arg-type]


def test_message_is_frozen_validated_on_replace_and_keeps_the_nonce_out_of_repr() -> None:
    message = SiweMessage.parse(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.nonce = "changed12345"  # type: ignore[misc]
    assert not hasattr(message, "__dict__")
    changes: list[dict[str, Any]] = [
        {"domain": "a b"},
        {"chain_id": -1},
        {"nonce": "x"},
        {"uri": "?"},
    ]
    for change in changes:
        with pytest.raises(SiweError):
            dataclasses.replace(message, **change)
    assert "abcdef12345678" not in repr(message)
    assert hash(message) == hash(SiweMessage.parse(FULL))


def test_siwe_error_is_a_400_invalid_message_and_a_value_error() -> None:
    error = SiweError("line 3 must be empty")
    assert isinstance(error, InvalidMessage) and isinstance(error, ValueError)
    assert (error.status, error.code) == (400, 40004)
    assert error.msg == "invalid sign-in message: line 3 must be empty"
    assert SiweError().msg == InvalidMessage.msg


# ---------------------------------------------------------------------------------- RFC 3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01T00:00:00.5Z", 0.5),
        ("2026-01-01T00:00:00.000Z", T0),
        ("2026-01-01t00:00:00z", T0),
        ("2026-01-01T01:00:00+01:00", T0),
        ("2025-12-31T19:00:00-05:00", T0),
        ("2026-01-01T05:30:00+05:30", T0),
        ("2026-01-01T00:00:00-00:00", T0),
        ("2026-01-01T00:00:00.250+00:00", T0 + 0.25),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
        ("2000-02-29T00:00:00Z", 951_782_400.0),
        ("1969-12-31T23:59:59Z", -1.0),
    ],
)
def test_rfc3339_parses_to_utc_epoch_seconds(text: str, expected: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", BAD_TIMES)
def test_rfc3339_refuses_malformed_and_impossible_times(text: str) -> None:
    with pytest.raises(SiweError):
        parse_rfc3339(text)


def test_rfc3339_agrees_with_datetime_and_formats_back() -> None:
    rng = random.Random(3339)
    for _ in range(300):
        seconds = rng.randrange(-2_000_000_000, 4_000_000_000)
        zone = dt.timezone(dt.timedelta(minutes=rng.randrange(-1439, 1440)))
        text = dt.datetime.fromtimestamp(seconds, zone).isoformat()
        assert parse_rfc3339(text) == seconds
        millis = rng.randrange(0, 1000)
        assert parse_rfc3339(format_rfc3339(seconds + millis / 1000)) == pytest.approx(
            seconds + millis / 1000, abs=1e-6
        )
    assert format_rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert format_rfc3339(T0 + 0.25) == "2026-01-01T00:00:00.250Z"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            format_rfc3339(bad)
    with pytest.raises(TypeError):
        format_rfc3339(True)


# ---------------------------------------------------------------------------------- validate


def test_validate_takes_every_binding_as_a_required_keyword() -> None:
    for method in (SiweMessage.validate, SiweMessage.verify):
        parameters = list(inspect.signature(method).parameters.values())[1:]
        for parameter in parameters:
            if parameter.name == "signature":
                continue
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
            if parameter.name != "skew":
                assert parameter.default is inspect.Parameter.empty, parameter.name
    message = SiweMessage.parse(FULL)
    arguments = bindings(message)
    del arguments["chain_ids"]
    with pytest.raises(TypeError):
        message.validate(**arguments)


def test_validate_accepts_the_matching_service() -> None:
    message = SiweMessage.parse(FULL)
    message.validate(**bindings(message))
    message.validate(**bindings(message, chain_ids=None))
    message.validate(**bindings(message, chain_ids=[1, 137]))


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ({"domain": "Example.com"}, "domain"),
        ({"domain": "example.com."}, "domain"),
        ({"domain": "example.com:443"}, "domain"),
        ({"domain": "www.example.com"}, "domain"),
        ({"domain": ""}, "domain"),
        ({"uri": "https://example.com/login/"}, "URI"),
        ({"uri": "https://EXAMPLE.com/login"}, "URI"),
        ({"uri": "http://example.com/login"}, "URI"),
        ({"nonce": "ABCDEF12345678"}, "nonce"),
        ({"nonce": "abcdef1234567"}, "nonce"),
        ({"nonce": ""}, "nonce"),
        ({"nonce": "abcdef12345678é"}, "nonce"),
        ({"address": ADDRESS.lower()}, "address"),
        ({"address": OTHER.address}, "address"),
        ({"chain_ids": {5}}, "chain"),
        ({"chain_ids": set()}, "chain"),
    ],
)
def test_validate_refuses_any_binding_mismatch(override: dict[str, Any], check: str) -> None:
    message = SiweMessage.parse(FULL)
    with pytest.raises(MessageRejected) as info:
        message.validate(**bindings(message, **override))
    assert check in str(info.value)
    assert_no_echo(str(info.value), FULL)
    assert "abcdef12345678" not in str(info.value)


def test_validate_any_chain_only_when_chain_ids_is_none() -> None:
    message = SiweMessage.parse(text_with(CHAIN, "Chain ID: 42161"))
    message.validate(**bindings(message, chain_ids=None))
    with pytest.raises(MessageRejected, match="chain"):
        message.validate(**bindings(message, chain_ids={1}))


def test_validate_checks_a_present_scheme_against_the_uri() -> None:
    https = SiweMessage.parse(POSITIVE_TEXTS["scheme"])
    https.validate(**bindings(https))
    http = SiweMessage.parse(text_with(HEADER, "http://" + BASE_LINES[HEADER]))
    with pytest.raises(MessageRejected, match="scheme"):
        http.validate(**bindings(http))


def windowed(
    *, issued: float, expires: float | None = None, not_before: float | None = None
) -> SiweMessage:
    lines = [*BASE_LINES[:ISSUED], f"Issued At: {format_rfc3339(issued)}"]
    if expires is not None:
        lines.append(f"Expiration Time: {format_rfc3339(expires)}")
    if not_before is not None:
        lines.append(f"Not Before: {format_rfc3339(not_before)}")
    return SiweMessage.parse("\n".join(lines))


SKEW = 60.0
TICK = 0.001


def test_expiration_edges() -> None:
    message = windowed(issued=T0, expires=T0 + 600)
    message.validate(**bindings(message, now=T0 + 600 + SKEW - TICK))
    with pytest.raises(MessageExpired, match="has expired"):
        message.validate(**bindings(message, now=T0 + 600 + SKEW))
    message.validate(**bindings(message, now=T0 + 600 - TICK, skew=0.0))
    with pytest.raises(MessageExpired, match="has expired"):
        message.validate(**bindings(message, now=T0 + 600, skew=0.0))


def test_not_before_edges() -> None:
    message = windowed(issued=T0, expires=T0 + 600, not_before=T0 + 300)
    message.validate(**bindings(message, now=T0 + 300 - SKEW))
    with pytest.raises(MessageExpired, match="not yet valid"):
        message.validate(**bindings(message, now=T0 + 300 - SKEW - TICK))
    message.validate(**bindings(message, now=T0 + 300, skew=0.0))
    with pytest.raises(MessageExpired, match="not yet valid"):
        message.validate(**bindings(message, now=T0 + 300 - TICK, skew=0.0))


def test_issued_at_in_the_future_edges() -> None:
    message = windowed(issued=T0)
    message.check_issuance(now=T0 - SKEW)
    with pytest.raises(MessageExpired, match="Issued At is in the future"):
        message.check_issuance(now=T0 - SKEW - TICK)
    # EIP-4361 verification itself does not look at Issued At.
    message.validate(**bindings(message, now=T0 - SKEW - TICK))
    # Without an expiration time, an old message is still inside its window.
    message.validate(**bindings(message, now=T0 + 10 * 365 * 86_400))
    message.check_issuance(now=T0 + 10 * 365 * 86_400)


def test_an_empty_window_is_refused_even_within_the_skew() -> None:
    backwards = windowed(issued=T0, expires=T0 - 10)
    with pytest.raises(MessageExpired, match="Expiration Time is not after its Issued At"):
        backwards.check_issuance(now=T0 - 30)
    same = windowed(issued=T0, expires=T0)
    with pytest.raises(MessageExpired, match="Expiration Time is not after its Issued At"):
        same.check_issuance(now=T0 - 30)
    closed = windowed(issued=T0, expires=T0 + 600, not_before=T0 + 600)
    with pytest.raises(MessageExpired, match="Not Before is not before its Expiration Time"):
        closed.check_issuance(now=T0 + 590)
    windowed(issued=T0, expires=T0 + 600, not_before=T0 + 300).check_issuance(now=T0)


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"now": float("nan")}, ValueError),
        ({"now": float("inf")}, ValueError),
        ({"now": True}, TypeError),
        ({"now": "1767225600"}, TypeError),
        ({"skew": float("nan")}, ValueError),
        ({"skew": -1.0}, ValueError),
        ({"skew": float("inf")}, ValueError),
        ({"domain": None}, TypeError),
        ({"nonce": b"abcdef12345678"}, TypeError),
        ({"chain_ids": "1"}, TypeError),
    ],
)
def test_validate_refuses_malformed_arguments_instead_of_failing_open(
    override: dict[str, Any], error: type[Exception]
) -> None:
    message = windowed(issued=T0, expires=T0 + 600)
    with pytest.raises(error):
        message.validate(**bindings(message, **override))
    # NaN makes every time comparison false: it must never let an expired message through.
    expired = windowed(issued=T0 - 7200, expires=T0 - 3600)
    with pytest.raises((ValueError, TypeError, MessageExpired)):
        expired.validate(**bindings(expired, **override))


# ------------------------------------------------------------------------------- signatures


def test_a_real_signature_verifies() -> None:
    message = SiweMessage.parse(FULL)
    signature = sign(WALLET, str(message))
    message.verify(signature, **verify_bindings(message))
    # With recovery byte 0/1 instead of 27/28 as well.
    raw = bytes.fromhex(signature[2:])
    message.verify("0x" + (raw[:64] + bytes((raw[64] - 27,))).hex(), **verify_bindings(message))


def test_a_signature_by_another_key_is_refused() -> None:
    message = SiweMessage.parse(FULL)
    with pytest.raises(SignatureMismatch):
        message.verify(sign(OTHER, str(message)), **verify_bindings(message))
    # The other key signing a message that names the other address is fine for that message only.
    theirs = SiweMessage.parse(text_with(ADDR, OTHER.address))
    theirs.verify(sign(OTHER, str(theirs)), **verify_bindings(theirs))


MUTATIONS: dict[str, Callable[[str], str]] = {
    "domain": lambda t: t.replace("example.com wants", "example.org wants"),
    "scheme added": lambda t: "https://" + t,
    "address": lambda t: t.replace(ADDRESS, OTHER.address),
    "statement": lambda t: t.replace("Sign in to Example", "Sign in to Example!"),
    "statement removed": lambda t: t.replace("Sign in to Example\n", ""),
    "uri": lambda t: t.replace("URI: https://example.com/login", "URI: https://example.com/logout"),
    "chain id": lambda t: t.replace("Chain ID: 1", "Chain ID: 2"),
    "nonce": lambda t: t.replace("abcdef12345678", "abcdef12345679"),
    "issued at": lambda t: t.replace(
        "Issued At: 2026-01-01T00:00:00.000Z", "Issued At: 2026-01-01T00:00:01.000Z"
    ),
    "issued at same instant other text": lambda t: t.replace("00:00:00.000Z", "00:00:00Z"),
    "expiration": lambda t: t.replace("00:10:00.000Z", "00:10:01.000Z"),
    "expiration removed": lambda t: t.replace("\nExpiration Time: 2026-01-01T00:10:00.000Z", ""),
    "not before": lambda t: t.replace("23:59:00.000Z", "23:58:00.000Z"),
    "request id": lambda t: t.replace("req-1", "req-2"),
    "resource changed": lambda t: t.replace("example.com/a", "example.com/c"),
    "resource removed": lambda t: t.replace("\n- ipfs://bafy/b", ""),
    "resource added": lambda t: t + "\n- https://evil.example/",
}


@pytest.mark.parametrize("mutate", list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_changing_any_field_after_signing_breaks_verification(mutate: Callable[[str], str]) -> None:
    signature = sign(WALLET, FULL)
    SiweMessage.parse(FULL).verify(signature, **verify_bindings(SiweMessage.parse(FULL)))
    mutated_text = mutate(FULL)
    assert mutated_text != FULL
    mutated = SiweMessage.parse(mutated_text)
    # Every binding is the mutated message's own, so only the signature can refuse it.
    with pytest.raises(SignatureMismatch):
        mutated.verify(signature, **verify_bindings(mutated))


@pytest.mark.parametrize(
    "signature",
    [
        None,
        123,
        b"0x00",
        "",
        "0x",
        "0x" + "00" * 65,
        "0x" + "zz" * 65,
        "0x" + "11" * 64,
        "0x" + "11" * 66,
        "0x" + "11" * 64 + "05",
        "0x" + (1).to_bytes(32, "big").hex() + (SECP256K1_N - 1).to_bytes(32, "big").hex() + "1b",
    ],
)
def test_malformed_signatures_are_refused_cleanly(signature: object) -> None:
    message = SiweMessage.parse(FULL)
    with pytest.raises(InvalidSignatureFormat):
        message.verify(signature, **verify_bindings(message))  # type: ignore[arg-type]


def test_a_high_s_twin_of_a_real_signature_is_refused() -> None:
    message = SiweMessage.parse(FULL)
    raw = bytes.fromhex(sign(WALLET, FULL)[2:])
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((raw[64] ^ 1,))
    with pytest.raises(InvalidSignatureFormat):
        message.verify("0x" + twin.hex(), **verify_bindings(message))


@pytest.mark.parametrize("exception", [RuntimeError("boom"), ValueError("x"), MemoryError()])
def test_any_failure_inside_recovery_is_a_signature_mismatch(
    monkeypatch: pytest.MonkeyPatch, exception: BaseException
) -> None:
    def broken(message: bytes, signature: str) -> str:
        raise exception

    monkeypatch.setattr(siwe_module, "recover_address", broken)
    message = SiweMessage.parse(FULL)
    with pytest.raises(SignatureMismatch):
        message.verify(sign(WALLET, FULL), **verify_bindings(message))


def test_verify_checks_the_signature_then_every_binding() -> None:
    message = SiweMessage.parse(FULL)
    good = sign(WALLET, FULL)
    with pytest.raises(SignatureMismatch):
        message.verify(sign(OTHER, FULL), **verify_bindings(message, domain="evil.example"))
    with pytest.raises(MessageRejected, match="domain"):
        message.verify(good, **verify_bindings(message, domain="evil.example"))
    with pytest.raises(MessageRejected, match="nonce"):
        message.verify(good, **verify_bindings(message, nonce="zzzzzzzz1"))
    with pytest.raises(MessageRejected, match="chain"):
        message.verify(good, **verify_bindings(message, chain_ids={10}))
    with pytest.raises(MessageExpired, match="has expired"):
        message.verify(good, **verify_bindings(message, now=T0 + 3600))


def test_checksum_matches_the_signatures_module() -> None:
    rng = random.Random(55)
    for _ in range(200):
        body = rng.randbytes(20).hex()
        eip55 = to_checksum_address(body)
        fields = valid_fields()
        fields["address"] = eip55
        assert SiweMessage.from_fields(fields).address == eip55
        if eip55[2:] != body:  # it has letters: any other casing is refused
            fields["address"] = "0x" + body
            with pytest.raises(SiweError, match="EIP-55"):
                SiweMessage.from_fields(fields)
