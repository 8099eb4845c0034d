"""The flat keywords of the 0.1 ``WalletAuth`` constructor, kept working for one release.

Each maps onto a field of a settings object and warns (``DeprecationWarning``) with the new
spelling; passing a keyword together with the settings object it belongs to is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from .chains.base import ChainId, ChainVerifier
from .chains.ethereum import EthereumVerifier
from .settings import LoginSettings, TokenSettings, Web3MQSettings

#: old keyword -> (settings group, field)
_MOVED: Mapping[str, tuple[str, str]] = {
    "token_lifetime": ("tokens", "lifetime"),
    "session_lifetime": ("tokens", "session_lifetime"),
    "issuer": ("tokens", "issuer"),
    "audience": ("tokens", "audience"),
    "algorithm": ("tokens", "algorithm"),
    "token_cache_size": ("tokens", "cache_size"),
    "revocation": ("tokens", "revocation"),
    "nonce_lifetime": ("login", "nonce_lifetime"),
    "allow_raw_secret": ("login", "allow_raw_secret"),
    "clock_skew": ("login", "clock_skew"),
    "max_body_size": ("login", "max_body_size"),
    "web3mq_uris": ("web3mq", "uris"),
    "timestamp_window": ("web3mq", "timestamp_window"),
    "max_devices": ("web3mq", "max_devices"),
    "max_avatar_size": ("web3mq", "max_avatar_size"),
    "max_nickname_length": ("web3mq", "max_nickname_length"),
    "signed_requests": ("web3mq", "signed_requests"),
    "signed_content": ("web3mq", "signed_content"),
    "chain_ids": ("chains", "chain_ids"),
    "did_verifiers": ("chains", "did_verifiers"),
}
_NEW_KEYWORDS = frozenset(
    {
        "secret_key", "domain", "uri", "nonce_store", "user_store", "replay_store", "chains",
        "tokens", "login", "web3mq", "cookie", "rate_limit", "on_login", "on_refresh", "clock",
        "identity",
    }
)
_CLASSES = {"tokens": TokenSettings, "login": LoginSettings, "web3mq": Web3MQSettings}


class LegacyDidVerifier:
    """A 0.1 ``DidVerifier`` (synchronous ``normalize`` and ``verify``) as a ``ChainVerifier``."""

    def __init__(self, did_type: str, verifier: Any) -> None:
        self.did_type = did_type
        self.max_signature_length = 132
        self._verifier = verifier

    def normalize(self, address: object) -> str:
        """The wrapped verifier's canonical form."""
        return str(self._verifier.normalize(address))

    def parse_signature(self, value: object) -> object:
        """Unchanged: the wrapped verifier parses its own signatures in ``verify``."""
        return value

    def check_sign_in(self, text: str, **binding: Any) -> ChainId:
        """EIP-4361, as ``/login`` always checked it for the 0.1 verifiers."""
        return EthereumVerifier().check_sign_in(text, **binding)

    async def verify(
        self, message: bytes, signature: object, address: str, *, chain_id: ChainId = None
    ) -> None:
        """The wrapped verifier's synchronous check."""
        self._verifier.verify(message, signature, address)

    def account_id(self, address: str, chain_id: ChainId = None) -> None:
        """Unknown: a 0.1 verifier names no chain."""
        return None


def settings_from_keywords(**flat: Any) -> dict[str, Any]:
    """The new-style ``WalletAuth`` keywords for a mix of 0.1 flat ones and new ones.

    ``WalletAuth(**settings_from_keywords(secret_key=..., revocation=True, ...))`` builds the
    same service as the 0.1 call did, without deprecation warnings: a migration aid.
    """
    unknown = sorted(
        name for name in flat if name not in _MOVED and name not in _NEW_KEYWORDS
    )
    if unknown:
        raise TypeError(f"WalletAuth() got unexpected keyword arguments: {', '.join(unknown)}")
    result = {name: value for name, value in flat.items() if name not in _MOVED}
    fields: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name in _MOVED:
            group, field = _MOVED[name]
            if result.get(group) is not None:
                raise ValueError(f"pass {name} inside {group}=..., not beside it")
            fields.setdefault(group, {})[field] = value
    for group, cls in _CLASSES.items():
        if group in fields:
            result[group] = cls(**fields[group])
    if "chains" in fields:
        result["chains"] = _legacy_chains(fields["chains"])
    return result


def warn_legacy(names: Iterable[str]) -> None:
    """One ``DeprecationWarning`` per 0.1 keyword, naming its new spelling."""
    for name in sorted(names):
        group, field = _MOVED[name]
        spelled = (
            "chains=[EthereumVerifier(chain_ids=...)]"
            if group == "chains"
            else f"{group}={_CLASSES[group].__name__}({field}=...)"
        )
        warnings.warn(
            f"WalletAuth({name}=...) is deprecated; use {spelled}",
            DeprecationWarning,
            stacklevel=3,
        )


def _legacy_chains(fields: Mapping[str, Any]) -> list[ChainVerifier]:
    ethereum = EthereumVerifier(chain_ids=fields.get("chain_ids"))
    did_verifiers = fields.get("did_verifiers")
    if did_verifiers is None:
        return [ethereum]
    if not isinstance(did_verifiers, Mapping) or not did_verifiers:
        raise ValueError("did_verifiers must name at least one did type, e.g. {'eth': ...}")
    chains: list[ChainVerifier] = []
    for name, verifier in did_verifiers.items():
        if name == "eth" and type(verifier).__name__ == "EthDidVerifier":
            chains.append(ethereum)  # the built-in one: keep the fast path and chain ids
        else:
            chains.append(LegacyDidVerifier(name, verifier))
    return chains


__all__ = ["LegacyDidVerifier", "settings_from_keywords", "warn_legacy"]
