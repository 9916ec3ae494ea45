"""API keys: shape, hash-only storage, listing, revocation and clear errors."""

from __future__ import annotations

import hashlib
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.security.db import Database
from services.security.keys import (
    PREFIX_LENGTH,
    KeyStore,
    KeyStoreError,
    generate_key,
    hash_key,
    looks_like_key,
)
from services.security.rbac import parse_bearer

KEY_RE = re.compile(r"^ais_[A-Za-z0-9_-]{43}$")
URLSAFE = set(string.ascii_letters + string.digits + "-_")


def raw_bytes(directory: Path) -> bytes:
    """Everything SQLite wrote: the database file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob("security.db*")))


# --- key shape -------------------------------------------------------------------------------


def test_key_shape() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert KEY_RE.fullmatch(key)
        assert len(key) == 47
        assert looks_like_key(key)


def test_hash_is_sha256_hex() -> None:
    key = generate_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key) != hash_key(generate_key())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: k[:-1],
        lambda k: k + "A",
        lambda k: k + "\n",
        lambda k: " " + k,
        lambda k: "AIS_" + k[4:],
        lambda k: "sk-_" + k[4:],
        lambda k: k[:10] + "!" + k[11:],
        lambda k: k[:10] + "=" + k[11:],
    ],
    ids=["short", "long", "newline", "space", "upper-scheme", "other-scheme", "bang", "padding"],
)
def test_looks_like_key_rejects_near_misses(mutate) -> None:
    assert not looks_like_key(mutate(generate_key()))


@given(st.text())
def test_looks_like_key_false_for_arbitrary_text(text: str) -> None:
    if looks_like_key(text):
        assert text.startswith("ais_")
        assert len(text) == 47
        assert set(text[4:]) <= URLSAFE


@given(st.text(alphabet=sorted(URLSAFE), min_size=43, max_size=43))
def test_looks_like_key_true_for_key_shaped_text(body: str) -> None:
    assert looks_like_key("ais_" + body)


# --- parse_bearer ----------------------------------------------------------------------------


@given(st.one_of(st.none(), st.text(), st.text().map(lambda t: "Bearer " + t)))
def test_parse_bearer_never_raises_and_only_accepts_bearer(header: str | None) -> None:
    token = parse_bearer(header)
    if token is not None:
        assert header is not None
        words = header.split()
        assert len(words) == 2
        assert words[0].lower() == "bearer"
        assert words[1] == token
        assert not any(c.isspace() for c in token)


@given(
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"]),
    token=st.text(min_size=1).filter(lambda t: not any(c.isspace() for c in t)),
    gap=st.sampled_from([" ", "  "]),
    pad=st.sampled_from(["", " ", "\t"]),
)
def test_parse_bearer_returns_the_token(scheme: str, token: str, gap: str, pad: str) -> None:
    assert parse_bearer(f"{pad}{scheme}{gap}{token}{pad}") == token


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Token abc", "Bearer a b", "Bearerabc", "abc"],
)
def test_parse_bearer_rejects(header: str | None) -> None:
    assert parse_bearer(header) is None


# --- storage ---------------------------------------------------------------------------------


def test_create_key(store: KeyStore) -> None:
    created = store.create_key("alice", "developer", name="laptop")
    assert KEY_RE.fullmatch(created.key)
    assert created.prefix == created.key[:PREFIX_LENGTH]
    assert created.prefix.startswith("ais_")
    assert (created.user, created.role, created.expires_at) == ("alice", "developer", None)
    assert created.id > 0


def test_only_the_hash_is_stored(store: KeyStore, db: Database, tmp_path: Path) -> None:
    created = store.create_key("alice", "viewer")
    row = db.query_one("SELECT * FROM api_keys WHERE id = ?", (created.id,))
    assert row["key_hash"] == hash_key(created.key)
    assert row["prefix"] == created.key[:PREFIX_LENGTH]
    for value in dict(row).values():
        assert created.key not in str(value)

    written = raw_bytes(tmp_path)
    assert hash_key(created.key).encode() in written  # the search does see stored text
    assert created.key.encode() not in written
    assert created.key[PREFIX_LENGTH:].encode() not in written


def test_list_keys(store: KeyStore) -> None:
    a = store.create_key("alice", "developer", name="one")
    b = store.create_key("bob", "viewer")
    c = store.create_key("alice", "developer", name="two")
    keys = store.list_keys()
    assert [k.id for k in keys] == [a.id, b.id, c.id]
    assert [k.name for k in store.list_keys(user="alice")] == ["one", "two"]
    assert store.list_keys(user="nobody") == []
    info = keys[1]
    assert (info.prefix, info.user, info.role, info.state) == (b.prefix, "bob", "viewer", "active")
    assert info.revoked_at is None
    assert datetime.fromisoformat(info.created_at).utcoffset().total_seconds() == 0


def test_revoke_by_prefix(store: KeyStore) -> None:
    keep = store.create_key("alice", "viewer")
    gone = store.create_key("alice", "viewer")
    info = store.revoke(gone.prefix)
    assert info.id == gone.id
    assert info.state == "revoked"
    assert info.revoked_at is not None
    states = {k.id: k.state for k in store.list_keys()}
    assert states == {keep.id: "active", gone.id: "revoked"}


def test_revoke_by_id(store: KeyStore) -> None:
    created = store.create_key("alice", "viewer")
    assert store.revoke(str(created.id)).state == "revoked"


def test_revoke_twice_is_an_error(store: KeyStore) -> None:
    created = store.create_key("alice", "viewer")
    first = store.revoke(created.prefix)
    with pytest.raises(KeyStoreError, match="already revoked") as info:
        store.revoke(str(created.id))
    assert first.revoked_at in str(info.value)


@pytest.mark.parametrize("identifier", ["ais_notthere", "99999", "", "ais_"])
def test_revoke_unknown(store: KeyStore, identifier: str) -> None:
    store.create_key("alice", "viewer")
    with pytest.raises(KeyStoreError, match="no API key"):
        store.revoke(identifier)


def test_revoke_ambiguous_prefix(store: KeyStore, db: Database) -> None:
    a = store.create_key("alice", "viewer")
    b = store.create_key("bob", "viewer")
    with db.transaction() as conn:
        conn.execute("UPDATE api_keys SET prefix = ? WHERE id = ?", (a.prefix, b.id))
    with pytest.raises(KeyStoreError, match="matches 2 keys; revoke by id"):
        store.revoke(a.prefix)
    assert store.revoke(str(b.id)).state == "revoked"
    assert {k.id: k.state for k in store.list_keys()} == {a.id: "active", b.id: "revoked"}


@pytest.mark.parametrize(
    "name",
    ["", " bob", "bob smith", "-bob", ".bob", "a" * 65, "bob\n", "bob/x", "bøb", "bob;drop"],
)
def test_invalid_user_names(store: KeyStore, name: str) -> None:
    with pytest.raises(KeyStoreError, match="invalid user name") as info:
        store.create_key(name, "viewer")
    assert repr(name) in str(info.value)
    assert store.user_count() == 0


@pytest.mark.parametrize("name", ["a", "Bob", "bob.smith@example.com", "x_y-z", "1" + "a" * 63])
def test_valid_user_names(store: KeyStore, name: str) -> None:
    assert store.create_key(name, "viewer").user == name


@pytest.mark.parametrize("role", ["root", "Admin", "", "viewer "])
def test_invalid_roles(store: KeyStore, role: str) -> None:
    with pytest.raises(KeyStoreError, match="unknown role") as info:
        store.create_key("alice", role)
    assert "viewer, developer, admin" in str(info.value)


def test_existing_user_with_another_role_is_refused(store: KeyStore) -> None:
    store.create_key("alice", "viewer")
    with pytest.raises(KeyStoreError, match="already exists with role 'viewer', not 'admin'"):
        store.create_key("alice", "admin")
    assert [k.role for k in store.list_keys()] == ["viewer"]  # no key, no role change


def test_second_key_for_same_user(store: KeyStore) -> None:
    first = store.create_key("alice", "developer")
    second = store.create_key("alice", "developer")
    assert first.key != second.key
    assert store.user_count() == 1
    assert store.ensure_user("alice", "developer") == store.ensure_user("alice", "developer")


def test_expiry_in_the_past_is_refused(store: KeyStore) -> None:
    for when in (datetime.now(UTC) - timedelta(seconds=1), datetime(2000, 1, 1, tzinfo=UTC)):
        with pytest.raises(KeyStoreError, match="future"):
            store.create_key("alice", "viewer", expires_at=when)
    assert store.list_keys() == []


def test_naive_expiry_is_refused_clearly(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="timezone"):
        store.create_key("alice", "viewer", expires_at=datetime.now() + timedelta(days=1))


def test_future_expiry_is_stored_in_utc(store: KeyStore) -> None:
    local = timezone(timedelta(hours=5))
    when = datetime.now(local) + timedelta(days=1)
    created = store.create_key("alice", "viewer", expires_at=when)
    stored = datetime.fromisoformat(created.expires_at)
    assert stored.utcoffset().total_seconds() == 0
    assert stored == when
    assert store.list_keys()[0].state == "active"


def test_expired_state(store: KeyStore, db: Database) -> None:
    created = store.create_key("alice", "viewer", expires_at=datetime.now(UTC) + timedelta(days=1))
    with db.transaction() as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = ? WHERE id = ?",
            ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(), created.id),
        )
    assert store.list_keys()[0].state == "expired"
