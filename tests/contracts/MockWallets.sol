// SPDX-License-Identifier: MIT
// Mock wallets for the contract-wallet tests, compiled by the test setup (tests/anvil_node.py).
// Deliberately small: each answers EIP-1271's isValidSignature for one kind of account.
pragma solidity ^0.8.24;

/// The signer of a 65-byte r || s || v signature, or the zero address for any other length.
library Recover {
    function signer(bytes32 hash, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) {
            return address(0);
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s);
    }
}

/// EIP-1271's answers.
library Magic {
    bytes4 internal constant VALID = 0x1626ba7e;
    bytes4 internal constant INVALID = 0xffffffff;
}

/// A deployed EIP-1271 wallet: valid when its one owner key signed the hash.
contract OwnedWallet {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4)
    {
        address signer = Recover.signer(hash, signature);
        return signer != address(0) && signer == owner ? Magic.VALID : Magic.INVALID;
    }
}

/// Deploys OwnedWallets with CREATE2, so a wallet's address is known before it exists
/// (what an ERC-6492 counterfactual signature relies on).
contract WalletFactory {
    function deploy(address owner, bytes32 salt) external returns (address) {
        return address(new OwnedWallet{salt: salt}(owner));
    }

    function predict(address owner, bytes32 salt) external view returns (address) {
        bytes32 initCode = keccak256(
            abi.encodePacked(type(OwnedWallet).creationCode, abi.encode(owner))
        );
        bytes32 digest = keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, initCode));
        return address(uint160(uint256(digest)));
    }
}

/// A contract that is not a wallet: no isValidSignature and no fallback, so any call to one reverts.
contract Counter {
    uint256 public count;

    function bump() external {
        count += 1;
    }
}

/// Code an EOA delegates to with EIP-7702. Its signatures carry a one-byte key-type prefix
/// (0x01: the account's own key), so they are 66 bytes and no longer recover as an EOA's:
/// only the account's code can say they are valid.
contract TypedKeyDelegate {
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4)
    {
        if (signature.length != 66 || signature[0] != 0x01) {
            return Magic.INVALID;
        }
        // Delegated code runs as the account: address(this) is the EOA itself.
        return Recover.signer(hash, signature[1:]) == address(this) ? Magic.VALID : Magic.INVALID;
    }
}
