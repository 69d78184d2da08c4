// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";

interface IStakeManager {
    function depositTo(address account) external payable;
    function addStake(uint32 unstakeDelaySec) external payable;
}

/// @notice A paymaster that sponsors every operation (tests only): for sponsored-only sessions.
contract TestPaymaster {
    address public immutable entryPoint;
    uint256 public sponsored;

    constructor(address entryPoint_) payable {
        entryPoint = entryPoint_;
    }

    function deposit() external payable {
        IStakeManager(entryPoint).depositTo{value: msg.value}(address(this));
    }

    function validatePaymasterUserOp(PackedUserOperation calldata, bytes32, uint256)
        external
        returns (bytes memory context, uint256 validationData)
    {
        require(msg.sender == entryPoint, "TestPaymaster: not the EntryPoint");
        sponsored += 1;
        return ("", 0);
    }

    function postOp(uint8, bytes calldata, uint256, uint256) external pure {}
}
