// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Vm} from "./Vm.sol";

/// @notice A minimal test base: the cheatcode handle, assertions that revert with the values
///         that differed, `bound` for fuzz inputs, and the invariant-target hooks forge reads.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private _targetContracts;

    error AssertionFailed(string what);
    error NotEqualUint(string what, uint256 left, uint256 right);
    error NotEqualBytes32(string what, bytes32 left, bytes32 right);
    error NotEqualAddress(string what, address left, address right);
    error NotEqualBytes(string what, bytes left, bytes right);

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert AssertionFailed(what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert NotEqualUint(what, a, b);
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) revert NotEqualBytes32(what, a, b);
    }

    function assertEq(address a, address b, string memory what) internal pure {
        if (a != b) revert NotEqualAddress(what, a, b);
    }

    function assertEq(bytes memory a, bytes memory b, string memory what) internal pure {
        if (keccak256(a) != keccak256(b)) revert NotEqualBytes(what, a, b);
    }

    function assertLe(uint256 a, uint256 b, string memory what) internal pure {
        if (a > b) revert NotEqualUint(what, a, b);
    }

    /// @dev Maps `x` into [lo, hi] without discarding fuzz runs.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 size = hi - lo;
        if (size == type(uint256).max) return x;
        return lo + (x % (size + 1));
    }

    // Invariant testing: forge calls these to learn which contracts to fuzz.
    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }
}
