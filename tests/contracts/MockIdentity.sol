// SPDX-License-Identifier: MIT
// Mock tokens and a small ENS for the identity tests (gates on chain state, primary names),
// compiled by the test setup (tests/anvil_node.py). Only the views the service reads are
// standard; minting is open to anyone, as a test chain needs nothing else.
pragma solidity ^0.8.24;

/// ERC-20's balanceOf, with open minting and transfers.
contract MockERC20 {
    mapping(address => uint256) public balanceOf;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        require(balanceOf[msg.sender] >= amount, "balance");
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        return true;
    }
}

/// ERC-721's ownerOf (reverting for a token nobody owns) and balanceOf.
contract MockERC721 {
    mapping(uint256 => address) private owners;
    mapping(address => uint256) public balanceOf;

    function ownerOf(uint256 id) external view returns (address) {
        address owner = owners[id];
        require(owner != address(0), "no such token");
        return owner;
    }

    function mint(address to, uint256 id) external {
        require(owners[id] == address(0), "minted");
        owners[id] = to;
        balanceOf[to] += 1;
    }

    function transferFrom(address from, address to, uint256 id) external {
        require(owners[id] == from && msg.sender == from, "not yours");
        owners[id] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
    }
}

/// ERC-1155's balanceOf(account, id).
contract MockERC1155 {
    mapping(uint256 => mapping(address => uint256)) private balances;

    function balanceOf(address account, uint256 id) external view returns (uint256) {
        return balances[id][account];
    }

    function mint(address to, uint256 id, uint256 amount) external {
        balances[id][to] += amount;
    }
}

/// ENS's registry: an owner and a resolver per node (namehash), subnodes by labelhash.
contract MockENSRegistry {
    mapping(bytes32 => address) public owner;
    mapping(bytes32 => address) public resolver;

    constructor() {
        owner[bytes32(0)] = msg.sender;
    }

    function setSubnodeOwner(bytes32 node, bytes32 label, address newOwner)
        external
        returns (bytes32)
    {
        require(owner[node] == msg.sender, "not the node's owner");
        bytes32 subnode = keccak256(abi.encodePacked(node, label));
        owner[subnode] = newOwner;
        return subnode;
    }

    function setResolver(bytes32 node, address newResolver) external {
        require(owner[node] == msg.sender, "not the node's owner");
        resolver[node] = newResolver;
    }
}

/// A public resolver: addr(node) and name(node), set by the node's owner.
contract MockResolver {
    MockENSRegistry public immutable registry;
    mapping(bytes32 => address) private addresses;
    mapping(bytes32 => string) private names;

    constructor(MockENSRegistry registry_) {
        registry = registry_;
    }

    modifier owned(bytes32 node) {
        require(registry.owner(node) == msg.sender, "not the node's owner");
        _;
    }

    function addr(bytes32 node) external view returns (address) {
        return addresses[node];
    }

    function name(bytes32 node) external view returns (string memory) {
        return names[node];
    }

    function setAddr(bytes32 node, address value) external owned(node) {
        addresses[node] = value;
    }

    function setName(bytes32 node, string calldata value) external owned(node) {
        names[node] = value;
    }
}

/// ENS's reverse registrar: an account claims <its lower-case hex>.addr.reverse and names itself.
contract MockReverseRegistrar {
    // namehash("addr.reverse")
    bytes32 public constant ADDR_REVERSE_NODE =
        0x91d1777781884d03a6757a803996e38de2a42967fb37eeaca72729271025a9e2;
    MockENSRegistry public immutable registry;
    MockResolver public immutable defaultResolver;

    constructor(MockENSRegistry registry_, MockResolver resolver_) {
        registry = registry_;
        defaultResolver = resolver_;
    }

    function setName(string calldata value) external returns (bytes32 node) {
        bytes32 label = hexLabel(msg.sender);
        node = registry.setSubnodeOwner(ADDR_REVERSE_NODE, label, address(this));
        registry.setResolver(node, address(defaultResolver));
        defaultResolver.setName(node, value);
    }

    /// keccak256 of the address as 40 lower-case hex digits: the reverse node's label.
    function hexLabel(address account) public pure returns (bytes32) {
        bytes memory text = new bytes(40);
        bytes16 digits = "0123456789abcdef";
        uint160 value = uint160(account);
        for (uint256 i = 40; i > 0; ) {
            i--;
            text[i] = digits[value & 0xf];
            value >>= 4;
        }
        return keccak256(text);
    }
}
