"""The PostgreSQL user store's tables and functions, as numbered migrations, and how they apply.

Every name is ``prefix + name``: ``<prefix>users``, ``<prefix>schema_version``, ``<prefix>merge``,
``<prefix>save`` and ``<prefix>fold_keys``; since version 3 also ``<prefix>bindings``,
``<prefix>guard_wallet``, ``<prefix>save_all`` and two triggers. A migration is applied once,
in order, and recorded in ``<prefix>schema_version``; all pending ones run in one transaction
under an advisory lock, so hosts starting together migrate once and a failed migration leaves
the old schema intact.
Migration 4 adds ``<prefix>events``, the audit events (``stores/postgres_events.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

_USERS = """
CREATE TABLE {p}users (
    userid      text PRIMARY KEY,
    address     text NOT NULL UNIQUE,
    did_type    text NOT NULL,
    first_login double precision NOT NULL,
    last_login  double precision NOT NULL,
    device_keys text[] NOT NULL DEFAULT '{{}}',
    nickname    text,
    avatar_url  text,
    avatar      bytea,
    avatar_type text
)
"""

# ``merge_login`` in SQL, one function per write so each costs one round trip. The row of the
# userid (or of the wallet) is locked with FOR UPDATE before it is read; a new row or a renamed
# userid may collide with a concurrent login's, and then the block's subtransaction rolls back
# (the delete included) and the loop looks again, seeing what the other login committed.
_FUNCTIONS = """
CREATE FUNCTION {p}fold_keys(old text[], new text[], max_keys integer) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    k text[];
BEGIN
    IF cardinality(new) = 0 AND cardinality(old) <= max_keys THEN
        RETURN old;  -- a login without a device key (the legacy route) changes nothing here
    END IF;
    k := ARRAY(
        SELECT item FROM unnest(old) WITH ORDINALITY AS t(item, n)
        WHERE item <> ALL (new) ORDER BY n
    ) || new;
    RETURN k[greatest(cardinality(k) - max_keys + 1, 1):];
END
$fn$;

CREATE FUNCTION {p}merge(
    p_userid text, p_address text, p_did_type text, p_first double precision,
    p_last double precision, p_keys text[], p_nickname text, p_avatar_url text,
    p_avatar bytea, p_avatar_type text, p_max integer
) RETURNS SETOF {p}users LANGUAGE plpgsql AS $fn$
DECLARE
    cur {p}users%ROWTYPE;
    found_row boolean;
    new_userid text;
BEGIN
    -- A returning wallet, the common case: one locking UPDATE of its row. A default-userid
    -- login matches the wallet's row whatever its userid (which that row keeps), unless that
    -- default userid is another wallet's.
    RETURN QUERY UPDATE {p}users SET
        did_type = p_did_type,
        first_login = least(first_login, p_first),
        last_login = greatest(last_login, p_last),
        device_keys = {p}fold_keys(device_keys, p_keys, p_max),
        nickname = coalesce(nickname, p_nickname),
        avatar_url = coalesce(avatar_url, p_avatar_url),
        avatar = CASE WHEN avatar IS NULL THEN p_avatar ELSE avatar END,
        avatar_type = CASE WHEN avatar IS NULL THEN p_avatar_type ELSE avatar_type END
    WHERE address = p_address AND (userid = p_userid OR (
        p_userid = p_address AND NOT EXISTS (SELECT FROM {p}users WHERE userid = p_userid)
    ))
    RETURNING *;
    IF FOUND THEN
        RETURN;
    END IF;
    FOR attempt IN 1..20 LOOP
        new_userid := p_userid;
        SELECT * INTO cur FROM {p}users WHERE userid = p_userid FOR UPDATE;
        found_row := FOUND;
        IF found_row AND cur.address <> p_address THEN
            RETURN;  -- the userid belongs to another wallet: no row, nothing changed
        END IF;
        IF NOT found_row THEN
            SELECT * INTO cur FROM {p}users WHERE address = p_address FOR UPDATE;
            found_row := FOUND;
            IF found_row AND p_userid = p_address THEN
                new_userid := cur.userid;  -- a default-userid login keeps the wallet's userid
            ELSIF found_row AND cur.userid <> p_address AND cur.userid <> p_userid THEN
                -- A wallet has one userid, and its record never gives way to a login naming
                -- another: no row, nothing changed (the route answers 409).
                RETURN;
            END IF;  -- else the wallet's default record, renamed below
        END IF;
        IF found_row AND cur.userid = new_userid THEN
            RETURN QUERY UPDATE {p}users SET
                did_type = p_did_type,
                first_login = least(first_login, p_first),
                last_login = greatest(last_login, p_last),
                device_keys = {p}fold_keys(device_keys, p_keys, p_max),
                nickname = coalesce(nickname, p_nickname),
                avatar_url = coalesce(avatar_url, p_avatar_url),
                avatar = CASE WHEN avatar IS NULL THEN p_avatar ELSE avatar END,
                avatar_type = CASE WHEN avatar IS NULL THEN p_avatar_type ELSE avatar_type END
            WHERE userid = cur.userid RETURNING *;
            RETURN;
        END IF;
        BEGIN
            IF found_row THEN  -- the wallet's default record takes the new userid
                RETURN QUERY UPDATE {p}users SET
                    userid = new_userid,
                    did_type = p_did_type,
                    first_login = least(first_login, p_first),
                    last_login = greatest(last_login, p_last),
                    device_keys = {p}fold_keys(device_keys, p_keys, p_max),
                    nickname = coalesce(nickname, p_nickname),
                    avatar_url = coalesce(avatar_url, p_avatar_url),
                    avatar = CASE WHEN avatar IS NULL THEN p_avatar ELSE avatar END,
                    avatar_type = CASE WHEN avatar IS NULL THEN p_avatar_type ELSE avatar_type END
                WHERE userid = cur.userid RETURNING *;
            ELSE
                RETURN QUERY INSERT INTO {p}users VALUES (
                    p_userid, p_address, p_did_type, p_first, p_last,
                    {p}fold_keys('{{}}', p_keys, p_max),
                    p_nickname, p_avatar_url, p_avatar, p_avatar_type
                ) RETURNING *;
            END IF;
            RETURN;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- a concurrent login took this userid or address first: look again
        END;
    END LOOP;
    RAISE EXCEPTION 'concurrent logins kept colliding' USING ERRCODE = 'serialization_failure';
END
$fn$;

CREATE FUNCTION {p}save(
    p_userid text, p_address text, p_did_type text, p_first double precision,
    p_last double precision, p_keys text[], p_nickname text, p_avatar_url text,
    p_avatar bytea, p_avatar_type text
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    FOR attempt IN 1..20 LOOP
        BEGIN
            DELETE FROM {p}users WHERE address = p_address AND userid <> p_userid;
            INSERT INTO {p}users AS u VALUES (
                p_userid, p_address, p_did_type, p_first, p_last, p_keys,
                p_nickname, p_avatar_url, p_avatar, p_avatar_type
            ) ON CONFLICT (userid) DO UPDATE SET
                address = excluded.address,
                did_type = excluded.did_type,
                first_login = least(u.first_login, excluded.first_login),
                last_login = greatest(u.last_login, excluded.last_login),
                device_keys = excluded.device_keys,
                nickname = excluded.nickname,
                avatar_url = excluded.avatar_url,
                avatar = excluded.avatar,
                avatar_type = excluded.avatar_type;
            RETURN;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- a concurrent save of this address under another userid: it gives way too
        END;
    END LOOP;
    RAISE EXCEPTION 'concurrent saves kept colliding' USING ERRCODE = 'serialization_failure';
END
$fn$;
"""

# Web3MQ v2: main keys, session keys and bound wallets in the user's row (guarded by its row
# lock like the rest of it), and an index of bound addresses that keeps each wallet unique. The
# trigger keeps a wallet from being one user's own and another's bound: both sides take one
# advisory lock per address, so of two racing writers the second sees the first's commit.
_WEB3MQ_V2 = """
ALTER TABLE {p}users
    ADD COLUMN main_pubkey   text,
    ADD COLUMN session_keys  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN bound_wallets jsonb NOT NULL DEFAULT '[]';

CREATE TABLE {p}bindings (
    address text PRIMARY KEY,
    userid  text NOT NULL REFERENCES {p}users (userid) ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE FUNCTION {p}guard_wallet() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{p}wallet:' || NEW.address, 0));
    IF TG_TABLE_NAME = '{p}users' THEN
        IF EXISTS (SELECT FROM {p}bindings WHERE address = NEW.address) THEN
            RAISE EXCEPTION 'this wallet is bound to a user' USING ERRCODE = 'WA001';
        END IF;
    ELSIF EXISTS (SELECT FROM {p}users WHERE address = NEW.address) THEN
        RAISE EXCEPTION 'this wallet is a user of its own' USING ERRCODE = 'WA001';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER {p}users_wallet BEFORE INSERT OR UPDATE OF address ON {p}users
    FOR EACH ROW EXECUTE FUNCTION {p}guard_wallet();
CREATE TRIGGER {p}bindings_wallet BEFORE INSERT OR UPDATE ON {p}bindings
    FOR EACH ROW EXECUTE FUNCTION {p}guard_wallet();

CREATE FUNCTION {p}save_all(
    p_userid text, p_address text, p_did_type text, p_first double precision,
    p_last double precision, p_keys text[], p_nickname text, p_avatar_url text,
    p_avatar bytea, p_avatar_type text, p_main_pubkey text, p_session_keys jsonb,
    p_bound_wallets jsonb
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM {p}save(
        p_userid, p_address, p_did_type, p_first, p_last, p_keys, p_nickname, p_avatar_url,
        p_avatar, p_avatar_type
    );
    UPDATE {p}users SET main_pubkey = p_main_pubkey, session_keys = p_session_keys,
        bound_wallets = p_bound_wallets WHERE userid = p_userid;
    DELETE FROM {p}bindings WHERE userid = p_userid;
    INSERT INTO {p}bindings (address, userid)
        SELECT w ->> 1, p_userid FROM jsonb_array_elements(p_bound_wallets) AS w;
END
$fn$;
"""

# Audit events (asgi_wallet_auth.events), kept beside the users; purged by age.
_EVENTS = """
CREATE TABLE {p}events (
    id         text PRIMARY KEY,
    at         double precision NOT NULL,
    kind       text NOT NULL,
    address    text,
    did_type   text,
    userid     text,
    account_id text,
    session    text,
    route      text,
    ip         text,
    code       integer,
    detail     text
);
CREATE INDEX {p}events_at ON {p}events (at);
"""

#: Migration N (1-based) is ``MIGRATIONS[N - 1]``; append, never edit a released one.
MIGRATIONS: tuple[str, ...] = (_USERS, _FUNCTIONS, _WEB3MQ_V2, _EVENTS)
#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaVersionError(RuntimeError):
    """The database holds a newer schema than this code knows; nothing was changed."""


def lock_key(prefix: str) -> int:
    """The advisory lock (a signed 64-bit key) that serialises migrations of one prefix."""
    digest = hashlib.blake2b(f"asgi-wallet-auth:{prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def too_new(found: int, prefix: str) -> SchemaVersionError:
    """The refusal for a schema newer than ``SCHEMA_VERSION``, with what to do about it."""
    return SchemaVersionError(
        f"the database's {prefix}users schema is version {found}, newer than version "
        f"{SCHEMA_VERSION} that this asgi-wallet-auth knows: a newer release migrated it; "
        "upgrade asgi-wallet-auth on this host (nothing was changed)"
    )


async def current_version(conn: Any, prefix: str) -> int | None:
    """The applied schema version, or None when the version table does not exist yet."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{prefix}schema_version")
    if not exists:
        return None
    version = await conn.fetchval(f"SELECT max(version) FROM {prefix}schema_version")  # noqa: S608
    return 0 if version is None else int(version)


async def migrate(conn: Any, prefix: str, *, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target`` in one transaction; return the version found before.

    Raises ``SchemaVersionError`` (and changes nothing) when the schema is newer than this code.
    """
    found = await current_version(conn, prefix)
    if found is not None and found > SCHEMA_VERSION:
        raise too_new(found, prefix)
    if found is not None and found >= target:
        return found  # the common start: one look, no lock, no transaction
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(prefix))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {prefix}schema_version ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Looked at again under the lock: another host may have migrated meanwhile.
        found = await current_version(conn, prefix) or 0
        if found > SCHEMA_VERSION:
            raise too_new(found, prefix)
        for version in range(found + 1, target + 1):
            await conn.execute(MIGRATIONS[version - 1].format(p=prefix))
            await conn.execute(
                f"INSERT INTO {prefix}schema_version (version) VALUES ($1)",  # noqa: S608
                version,
            )
    return found


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "current_version",
    "lock_key",
    "migrate",
    "too_new",
]
