// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IEntryPoint} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {ValetAccount} from "./ValetAccount.sol";

/// @title ValetAccountFactory
/// @notice Deploys {ValetAccount}s as EIP-1167 clones at CREATE2 addresses known before deployment,
///         each with the {SessionKeyValidator} installed, so an account's very first operation can
///         already be a session operation (deploy + enable + use in one UserOperation).
/// @dev ERC-7562 lets a not-yet-deployed account's validation touch its storage in other contracts
///      (the validator's counters) only when the factory is staked: {addStake} is for that.
contract ValetAccountFactory is Ownable {
    /// @notice The implementation every account delegates to.
    ValetAccount public immutable accountImplementation;
    /// @notice The validator module every new account gets installed.
    address public immutable sessionValidator;

    /// @notice A new account was deployed.
    event AccountCreated(address indexed account, address indexed owner, uint256 salt);

    /// @param validator The {SessionKeyValidator} to install in every account.
    /// @param factoryOwner Who may manage the factory's EntryPoint stake.
    constructor(address validator, address factoryOwner) Ownable(factoryOwner) {
        accountImplementation = new ValetAccount(validator);
        sessionValidator = validator;
    }

    /// @notice The address of the account of `owner` with `salt`, deployed or not.
    function getAddress(address owner, uint256 salt) public view returns (address) {
        return Clones.predictDeterministicAddress(address(accountImplementation), _salt(owner, salt));
    }

    /// @notice Deploys the account of `owner` with `salt`, or returns it if it exists already.
    function createAccount(address owner, uint256 salt) external returns (ValetAccount account) {
        address predicted = getAddress(owner, salt);
        if (predicted.code.length > 0) return ValetAccount(payable(predicted));
        account = ValetAccount(payable(Clones.cloneDeterministic(address(accountImplementation), _salt(owner, salt))));
        account.initialize(owner);
        emit AccountCreated(address(account), owner, salt);
    }

    /// @notice Stakes the factory in the EntryPoint (needed by ERC-7562 bundlers, see above).
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        accountImplementation.entryPoint().addStake{value: msg.value}(unstakeDelaySec);
    }

    /// @notice Starts the unstake delay.
    function unlockStake() external onlyOwner {
        accountImplementation.entryPoint().unlockStake();
    }

    /// @notice Withdraws the unlocked stake to `to`.
    function withdrawStake(address payable to) external onlyOwner {
        accountImplementation.entryPoint().withdrawStake(to);
    }

    function _salt(address owner, uint256 salt) private pure returns (bytes32) {
        return keccak256(abi.encode(owner, salt));
    }
}
