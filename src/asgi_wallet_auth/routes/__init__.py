"""Route families: one module each, composed by ``WalletAuth``."""
