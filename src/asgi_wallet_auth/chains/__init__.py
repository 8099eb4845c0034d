"""Chain verifiers: one module per chain behind the ``ChainVerifier`` protocol."""

from __future__ import annotations

from .base import ChainId, ChainRegistry, ChainVerifier
from .ethereum import EthereumVerifier
from .solana import SolanaVerifier

__all__ = ["ChainId", "ChainRegistry", "ChainVerifier", "EthereumVerifier", "SolanaVerifier"]
