// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";

/// @notice A second validator module an owner might install (a guardian, a co-signer) that says
///         yes to every ERC-1271 question: it must never be able to grant or revoke sessions.
contract YesValidator {
    function onInstall(bytes calldata) external {}

    function onUninstall(bytes calldata) external {}

    function isModuleType(uint256 moduleTypeId) external pure returns (bool) {
        return moduleTypeId == 1;
    }

    function validateUserOp(PackedUserOperation calldata, bytes32) external pure returns (uint256) {
        return 1;
    }

    function isValidSignatureWithSender(address, bytes32, bytes calldata) external pure returns (bytes4) {
        return 0x1626ba7e;
    }
}

/// @notice A target that reads a uint8 argument by truncating the word instead of reverting on
///         dirty upper bits, as hand-written assembly or old compilers do.
contract TruncatingTarget {
    uint256 public lastLevel;

    /// @dev `setLevel(uint8 level)`, decoded by hand: the low 8 bits of the word.
    fallback() external {
        uint256 word;
        assembly {
            word := calldataload(4)
        }
        lastLevel = word & 0xff;
    }
}

/// @notice An owner that is a contract (a multisig, a smart wallet): it accepts a signature by
///         its own key over the digest, through ERC-1271.
contract ContractOwner {
    address public immutable key;

    constructor(address key_) {
        key = key_;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(digest, v, r, s) == key ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}
