"""SIWS messages: every field, field orders, every refusal, fuzzing, and the Node cross-check."""

from __future__ import annotations

import contextlib
import itertools
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asgi_wallet_auth.base58 import b58encode
from asgi_wallet_auth.errors import InvalidMessage, MessageExpired, MessageRejected
from asgi_wallet_auth.siws import (
    CHAIN_IDS,
    MAX_MESSAGE_LENGTH,
    REQUIRED_FOR_LOGIN,
    SiwsError,
    SiwsMessage,
)
from tests.conftest import DOMAIN, T0, URI
from tests.solana_support import (
    ADDRESS,
    FIELDS,
    ISSUED,
    NONCE,
    OTHER_ADDRESS,
    T0_PLUS_HOUR,
    node_siws,
    siws_text,
)

HEADER = f"{DOMAIN} wants you to sign in with your Solana account:"
ALL_FIELDS = [
    ("URI", URI),
    ("Version", "1"),
    ("Chain ID", "solana:devnet"),
    ("Nonce", NONCE),
    ("Issued At", ISSUED),
    ("Expiration Time", T0_PLUS_HOUR),
    ("Not Before", "2025-12-31T23:59:00Z"),
    ("Request ID", "req-42"),
]
RESOURCES = ["ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/", "https://x.io/t"]
FULL = siws_text(fields=ALL_FIELDS, resources=RESOURCES)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def check(
    message: SiwsMessage,
    *,
    nonce: str = NONCE,
    address: str = ADDRESS,
    chain_ids: Any = ("mainnet",),
    now: float = T0,
    skew: float = 60.0,
    domain: str = DOMAIN,
    uri: str = URI,
) -> None:
    """validate + check_issuance, as the Solana verifier runs them."""
    message.validate(
        domain=domain,
        uri=uri,
        nonce=nonce,
        address=address,
        chain_ids=chain_ids,
        now=now,
        skew=skew,
    )
    message.check_issuance(now=now, skew=skew)


def refused(text: object, fragment: str) -> SiwsError:
    with pytest.raises(SiwsError) as caught:
        SiwsMessage.parse(text)  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, InvalidMessage)
    assert (error.status, error.code) == (400, 40004)
    assert fragment in error.msg, error.msg
    return error


# -- parsing and rendering ------------------------------------------------------------------


def test_full_message_every_field() -> None:
    message = SiwsMessage.parse(FULL)
    assert message.domain == DOMAIN
    assert message.address == ADDRESS
    assert message.statement == "Sign in to Example"
    assert message.uri == URI
    assert message.version == "1"
    assert message.chain_id == "solana:devnet"
    assert message.cluster == "devnet"
    assert message.nonce == NONCE
    assert message.issued_at == ISSUED
    assert message.expiration_time == T0_PLUS_HOUR
    assert message.not_before == "2025-12-31T23:59:00Z"
    assert message.request_id == "req-42"
    assert message.resources == tuple(RESOURCES)
    assert message.field_order is None  # the ABNF's order
    assert str(message) == FULL
    assert message._rendered_length() == len(FULL)
    assert NONCE not in repr(message)


def test_minimal_message_is_domain_and_address() -> None:
    text = f"{HEADER}\n{ADDRESS}"
    message = SiwsMessage.parse(text)
    assert (message.domain, message.address, message.statement) == (DOMAIN, ADDRESS, None)
    assert message.fields() == ()
    assert str(message) == text


def test_statement_without_fields() -> None:
    text = siws_text(fields=[])
    message = SiwsMessage.parse(text)
    assert message.statement == "Sign in to Example"
    assert message.fields() == ()
    assert str(message) == text


@pytest.mark.parametrize("tag, value", [*ALL_FIELDS, ("Resources", None)])
@pytest.mark.parametrize("statement", [None, "Hi"])
def test_each_field_alone(tag: str, value: str | None, statement: str | None) -> None:
    if value is None:
        text = siws_text(statement=statement, fields=[], resources=RESOURCES)
    else:
        text = siws_text(statement=statement, fields=[(tag, value)])
    message = SiwsMessage.parse(text)
    assert len(message.fields()) == 1
    assert str(message) == text
    assert message._rendered_length() == len(text)


def test_empty_resources_list() -> None:
    text = siws_text(fields=[("URI", URI)], resources=[])
    message = SiwsMessage.parse(text)
    assert message.resources == ()
    assert str(message) == text


@pytest.mark.parametrize("chain_id", sorted(CHAIN_IDS))
def test_every_chain_id_form(chain_id: str) -> None:
    message = SiwsMessage.parse(siws_text(fields=[("Chain ID", chain_id)]))
    assert message.chain_id == chain_id
    assert message.cluster == chain_id.removeprefix("solana:")


def orders() -> list[list[tuple[str, str]]]:
    fields = [*ALL_FIELDS]
    rng = random.Random(16)  # a fixed sample of the 9! orders, plus the ones wallets are seen with
    picked = [fields[::-1], fields[1:] + fields[:1], [fields[3], *fields[:3], *fields[4:]]]
    for _ in range(12):
        shuffled = fields[:]
        rng.shuffle(shuffled)
        picked.append(shuffled)
    return picked


@pytest.mark.parametrize("fields", orders())
@pytest.mark.parametrize("resources_at", [0, 4, 8])
def test_non_canonical_field_orders(fields: list[tuple[str, str]], resources_at: int) -> None:
    lines = [f"{tag}: {value}" for tag, value in fields]
    lines[resources_at:resources_at] = ["Resources:", *(f"- {r}" for r in RESOURCES)]
    text = f"{HEADER}\n{ADDRESS}\n\nSign in to Example\n\n" + "\n".join(lines)
    message = SiwsMessage.parse(text)
    canonical = SiwsMessage.parse(FULL)
    assert str(message) == text  # byte for byte, order included
    for name in ("uri", "version", "chain_id", "nonce", "issued_at", "request_id", "resources"):
        assert getattr(message, name) == getattr(canonical, name)
    assert message.field_order is not None
    assert set(message.field_order) == set(canonical.fields())
    check(message, chain_ids=None, now=T0 + 30)


def test_canonical_order_given_explicitly_is_stored_as_none() -> None:
    explicit = SiwsMessage(
        domain=DOMAIN,
        address=ADDRESS,
        uri=URI,
        nonce=NONCE,
        field_order=("uri", "nonce"),
    )
    assert explicit.field_order is None
    assert explicit == SiwsMessage(domain=DOMAIN, address=ADDRESS, uri=URI, nonce=NONCE)
    reordered = SiwsMessage(
        domain=DOMAIN, address=ADDRESS, uri=URI, nonce=NONCE, field_order=["nonce", "uri"]
    )
    assert reordered.field_order == ("nonce", "uri")
    assert reordered != explicit
    assert str(reordered).endswith(f"Nonce: {NONCE}\nURI: {URI}")


def test_from_fields_camel_and_snake_case_and_empty_strings() -> None:
    camel = SiwsMessage.from_fields({**FIELDS, "requestId": "", "resources": ["https://a.b"]})
    snake = SiwsMessage.from_fields(
        {
            "domain": DOMAIN,
            "address": ADDRESS,
            "statement": "Sign in to Example",
            "uri": URI,
            "version": "1",
            "chain_id": "mainnet",
            "nonce": NONCE,
            "issued_at": ISSUED,
            "resources": ("https://a.b",),
        }
    )
    assert camel == snake
    assert camel.request_id is None  # "" leaves the field out, as the wallets' renderer does
    assert str(camel) == siws_text(resources=["https://a.b"])


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({**FIELDS, "colour": "red"}, "unknown field name"),
        ({**FIELDS, "chain_id": "mainnet"}, "given twice"),
        ({"address": ADDRESS}, "domain is required"),
        ({"domain": DOMAIN, "address": ""}, "address is required"),
        ({**FIELDS, "statement": 7}, "statement must be a string"),
        ({**FIELDS, "resources": "https://a.b"}, "resources must be a list"),
        ({**FIELDS, "resources": [7]}, "a resource is not"),
    ],
)
def test_from_fields_refusals(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SiwsError, match=fragment):
        SiwsMessage.from_fields(fields)
    with pytest.raises(SiwsError, match="must be a mapping"):
        SiwsMessage.from_fields([("domain", DOMAIN)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"statement": "URI: https://evil.example"}, "must not start like a field"),
        ({"statement": "Resources:"}, "must not start like a field"),
        ({"statement": ""}, "statement must not be empty"),
        ({"statement": "two\nlines"}, "line break"),
        ({"field_order": ("nonce",)}, "exactly once"),
        ({"field_order": ("uri", "uri", "nonce")}, "exactly once"),
        ({"field_order": "uri"}, "list of field names"),
        ({"chain_id": 1}, "Chain ID must be"),
        ({"domain": 3}, "domain must be a string"),
        ({"request_id": "a b"}, "Request ID"),
        ({"request_id": "%zz"}, "Request ID"),
        ({"resources": ("https://a.b", "nope nope")}, "a resource is not"),
        ({"uri": "https://x" + "y" * MAX_MESSAGE_LENGTH}, "longer than"),
    ],
)
def test_construction_refusals(changes: dict[str, Any], fragment: str) -> None:
    values: dict[str, Any] = {"domain": DOMAIN, "address": ADDRESS, "uri": URI, "nonce": NONCE}
    with pytest.raises(SiwsError, match=fragment):
        SiwsMessage(**{**values, **changes})


# -- refusals of the text -------------------------------------------------------------------

VALID = siws_text()


@pytest.mark.parametrize(
    "text, fragment",
    [
        (b"bytes", "must be a string"),
        (VALID + " " * (MAX_MESSAGE_LENGTH - len(VALID) + 1), "longer than 8192"),
        (VALID.replace("\n", "\r\n"), "ends with CR"),
        (VALID.replace("Example", "Exämple"), "non-ASCII"),
        (VALID.replace("Sign in", "Sign\tin"), "control"),
        (VALID.replace("Solana", "Ethereum"), "line 1 must be"),
        (VALID.replace(DOMAIN, "", 1), "domain must not be empty"),
        (VALID.replace(DOMAIN, "exa mple.com", 1), "not an RFC 3986 authority"),
        (HEADER, "line 2 must be the address"),
        (f"{HEADER}\n{ADDRESS}\n", "must not end with a line break"),
        (VALID + "\n", "must not end with a line break"),
        (siws_text(fields=[]) + "\n", "must not end with a line break"),
        (VALID.replace(f"{ADDRESS}\n\n", f"{ADDRESS}\nx\n"), "line 3 must be empty"),
        (VALID.replace(f"{ADDRESS}\n\n", f"{ADDRESS}\n\n\n"), "line 4 must not be empty"),
        (VALID.replace("Example\n\n", "Example\n\n\n"), "line 6 must not be empty"),
        (VALID.replace("Example\n\n", "Example\nmore\n\n"), "line 5 must be empty"),
        (VALID.replace("Example\n\n", "Example\n\nmore\n"), "line 6 must be a field"),
        (VALID.replace("Sign in to Example", 'Say "hi"'), "statement must be printable"),
        (VALID.replace("Sign in to Example", "100%"), "statement must be printable"),
        (VALID + "\nColour: red", "line 11 is not a SIWS field"),
        (VALID + "\nuri: https://x", "is not a SIWS field"),
        (VALID.replace("URI: ", "URI:"), "line 6 must be a field"),
        (VALID + "\n- https://stray.example", "is not a SIWS field"),
        (VALID + "\nResources:\n-https://a.b", "is not a SIWS field"),
        (VALID + "\n\nURI: https://x", "is not a SIWS field"),
        (VALID.replace("Version: 1", "Version: 2"), "Version must be 1"),
        (VALID.replace("Chain ID: mainnet", "Chain ID: mainnet-beta"), "Chain ID must be"),
        (VALID.replace("Chain ID: mainnet", "Chain ID: Mainnet"), "Chain ID must be"),
        (
            VALID.replace("Chain ID: mainnet", "Chain ID: solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"),
            "Chain ID must be",
        ),
        (VALID.replace(NONCE, "abc1234"), "at least 8"),
        (VALID.replace(NONCE, "abcd-12345"), "at least 8"),
        (VALID.replace(ISSUED, "2026-02-30T00:00:00Z"), "impossible calendar date"),
        (VALID.replace(ISSUED, "2026-01-01T23:59:60Z"), "impossible time of day"),
        (VALID.replace(ISSUED, "yesterday"), "Issued At is not an RFC 3339"),
        (VALID + "\nExpiration Time: soon", "Expiration Time is not an RFC 3339"),
        (VALID + "\nNot Before: 2026-01-01", "Not Before is not an RFC 3339"),
        (VALID + "\nRequest ID: ", "Request ID must not be empty"),
        (VALID + "\nRequest ID: a/b?c", "Request ID must be"),
        (VALID.replace(URI, "not a uri"), "URI is not"),
        (VALID + "\nResources:\n- https://a.b\n- no spaces allowed", "a resource is not"),
        (VALID + "\nResources:\n- ", "a resource is not"),
    ],
)
def test_grammar_refusals(text: object, fragment: str) -> None:
    error = refused(text, fragment)
    assert NONCE not in error.msg


@pytest.mark.parametrize(
    "address",
    [
        "0x" + "ab" * 20,
        ADDRESS.replace(ADDRESS[5], "0"),
        ADDRESS[:-1] + "l",
        b58encode(b"\x07" * 31),
        b58encode(b"\x07" * 33),
        "1" + ADDRESS,  # one leading zero byte too many: 33 bytes
        " " + ADDRESS,
        ADDRESS + " ",
        "",
    ],
)
def test_address_refusals(address: str) -> None:
    text = f"{HEADER}\n{address}"
    refused(text, "address" if address else "address must not be empty")


@pytest.mark.parametrize("tag", [tag for tag, _ in ALL_FIELDS])
def test_duplicate_fields(tag: str) -> None:
    value = dict(ALL_FIELDS)[tag]
    refused(FULL + f"\n{tag}: {value}", f"field {tag} appears more than once")


def test_duplicate_resources() -> None:
    refused(FULL + "\nResources:\n- https://a.b", "field Resources appears more than once")


def test_size_cap_is_exact() -> None:
    base = siws_text(fields=[("URI", URI)], resources=[])
    filler = MAX_MESSAGE_LENGTH - len(base) - len("\n- https://a.b/")
    longest = base + "\n- https://a.b/" + "a" * filler
    assert len(longest) == MAX_MESSAGE_LENGTH
    assert str(SiwsMessage.parse(longest)) == longest
    refused(longest + "a", "longer than 8192")


# -- validation -----------------------------------------------------------------------------


def test_valid_message_passes_and_names_its_cluster() -> None:
    message = SiwsMessage.parse(VALID)
    check(message)
    check(SiwsMessage.parse(FULL), chain_ids={"devnet"}, now=T0 + 10)
    check(SiwsMessage.parse(FULL), chain_ids=None, now=T0 + 10)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"domain": "example.org"}, "domain"),
        ({"domain": "EXAMPLE.com"}, "domain"),
        ({"uri": URI + "/"}, "URI"),
        ({"nonce": NONCE[:-1] + "x"}, "nonce"),
        ({"nonce": "é" * 24}, "nonce"),
        ({"address": OTHER_ADDRESS}, "address"),
        ({"chain_ids": {"devnet", "testnet"}}, "chain id"),
    ],
)
def test_binding_refusals(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MessageRejected, match=fragment) as caught:
        check(SiwsMessage.parse(VALID), **overrides)
    assert (caught.value.status, caught.value.code) == (401, 40103)
    assert NONCE not in caught.value.msg


@pytest.mark.parametrize("missing", REQUIRED_FOR_LOGIN)
def test_fields_a_login_needs(missing: str) -> None:
    values = {k: v for k, v in FIELDS.items()}
    key = {"chain_id": "chainId", "issued_at": "issuedAt"}.get(missing, missing)
    del values[key]
    with pytest.raises(MessageRejected, match="has no") as caught:
        check(SiwsMessage.from_fields(values))
    assert caught.value.code == 40103


@pytest.mark.parametrize(
    "extra, now, fragment",
    [
        ([("Expiration Time", "2026-01-01T00:10:00Z")], T0 + 660, "has expired"),
        ([("Expiration Time", "2026-01-01T00:10:00Z")], T0 + 600 + 60, "has expired"),
        ([("Not Before", "2026-01-01T00:10:00Z")], T0 + 539, "not yet valid"),
        ([], T0 - 61, "Issued At is in the future"),
        ([("Expiration Time", ISSUED)], T0, "not after its Issued At"),
        ([("Expiration Time", "2025-12-31T23:59:30Z")], T0, "not after its Issued At"),
        (
            [("Expiration Time", "2026-01-01T00:00:30Z"), ("Not Before", "2026-01-01T00:00:30Z")],
            T0,
            "Not Before is not before",
        ),
    ],
)
def test_time_refusals(extra: list[tuple[str, str]], now: float, fragment: str) -> None:
    fields = [("URI", URI), ("Version", "1"), ("Chain ID", "mainnet"), ("Nonce", NONCE)]
    fields += [("Issued At", ISSUED), *extra]
    with pytest.raises(MessageExpired, match=fragment) as caught:
        check(SiwsMessage.parse(siws_text(fields=fields)), now=now)
    assert (caught.value.status, caught.value.code) == (401, 40104)


def test_time_edges_within_skew_pass() -> None:
    fields = [("URI", URI), ("Version", "1"), ("Chain ID", "mainnet"), ("Nonce", NONCE)]
    fields += [("Issued At", ISSUED), ("Expiration Time", "2026-01-01T00:10:00Z")]
    fields += [("Not Before", "2026-01-01T00:05:00Z")]
    message = SiwsMessage.parse(siws_text(fields=fields))
    check(message, now=T0 + 240)  # 60 s before Not Before: the skew lets it in
    check(message, now=T0 + 659.999)
    check(SiwsMessage.parse(VALID), now=T0 - 60)  # issued 60 s ahead: within the skew


def test_programming_errors_are_not_client_errors() -> None:
    message = SiwsMessage.parse(VALID)
    with pytest.raises(TypeError):
        check(message, nonce=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check(message, chain_ids="mainnet")
    with pytest.raises(ValueError, match="finite"):
        check(message, now=float("nan"))
    with pytest.raises(ValueError, match="non-negative"):
        check(message, skew=-1)


# -- fuzzing --------------------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        HEADER,
        ADDRESS,
        "",
        "Sign in to Example",
        f"URI: {URI}",
        "Version: 1",
        "Chain ID: devnet",
        f"Nonce: {NONCE}",
        f"Issued At: {ISSUED}",
        f"Expiration Time: {T0_PLUS_HOUR}",
        "Not Before: 2025-12-31T23:00:00Z",
        "Request ID: 7",
        "Resources:",
        "- https://a.b",
        "- ",
        "URI:",
    ]
)


@FUZZ
@given(text=st.text(max_size=300))
@example(text=f"{HEADER}\n{ADDRESS}\n\nURI: x\n")
def test_fuzz_any_text(text: str) -> None:
    assert_parse_contract(text)


@FUZZ
@given(lines=st.lists(_LINES | st.text(max_size=20), max_size=16))
def test_fuzz_line_soups(lines: list[str]) -> None:
    assert_parse_contract("\n".join([HEADER, ADDRESS, *lines]))


@FUZZ
@given(data=st.data())
def test_fuzz_mutations_of_a_valid_message(data: st.DataObject) -> None:
    text = FULL
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 6))
        insert = data.draw(st.text(alphabet=st.sampled_from("\n :-1aZ/\r\x00é"), max_size=4))
        text = text[:at] + insert + text[at + cut :]
    message = assert_parse_contract(text)
    if message is not None:
        for nonce, address in itertools.product((NONCE, "x"), (ADDRESS, OTHER_ADDRESS)):
            with contextlib.suppress(MessageRejected, MessageExpired):
                check(message, nonce=nonce, address=address, chain_ids=None, now=T0 + 1)


def assert_parse_contract(text: str) -> SiwsMessage | None:
    """The documented contract: a message that renders back to the text, or a SiwsError."""
    try:
        message = SiwsMessage.parse(text)
    except SiwsError as error:
        assert (error.status, error.code) == (400, 40004)
        return None
    assert str(message) == text
    assert message._rendered_length() == len(text)
    assert SiwsMessage.parse(str(message)) == message
    return message


# -- the Node cross-check -------------------------------------------------------------------

NODE_INPUTS: list[dict[str, Any]] = [
    {"domain": DOMAIN, "address": ADDRESS},
    {"domain": DOMAIN, "address": ADDRESS, "statement": "Sign in to Example"},
    {"domain": "localhost:8000", "address": OTHER_ADDRESS, "nonce": NONCE},
    FIELDS,
    {**FIELDS, "statement": "", "chainId": "solana:localnet", "resources": []},
    {
        **FIELDS,
        "domain": "[::1]:8443",
        "uri": "https://[::1]:8443/login?x=1#y",
        "expirationTime": T0_PLUS_HOUR,
        "notBefore": "2025-12-31T23:59:59.5+01:00",
        "requestId": "req:42@a%20b",
        "resources": RESOURCES,
    },
]


def test_node_renders_the_same_bytes_and_parses_the_same_fields() -> None:
    ours = [str(SiwsMessage.from_fields(fields)) for fields in NODE_INPUTS]
    result = node_siws({"render": NODE_INPUTS, "parse": ours})
    assert result["rendered"] == ours
    for text, parsed, fields in zip(ours, result["parsed"], NODE_INPUTS, strict=True):
        expected = {k: v for k, v in fields.items() if v != ""}
        assert parsed == expected, text
        assert SiwsMessage.parse(text) == SiwsMessage.from_fields(parsed)


def test_node_reads_other_field_orders_differently() -> None:
    """Why this module parses on its own: the reference parser takes one order only, and reads
    a reordered message as one long statement instead of its fields."""
    reordered = siws_text(fields=[("Nonce", NONCE), ("URI", URI)], statement=None)
    assert SiwsMessage.parse(reordered).uri == URI
    (parsed,) = node_siws({"parse": [reordered]})["parsed"]
    assert parsed is None or "uri" not in parsed
