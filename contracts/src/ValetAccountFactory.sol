// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ValetAccount} from "./ValetAccount.sol";

/// @title ValetAccountFactory
/// @notice Deploys {ValetAccount}s as EIP-1167 clones at CREATE2 addresses known before deployment,
///         each with the {SessionKeyValidator} installed, so an account's very first operation can
///         already be a session operation (deploy + enable + use in one UserOperation).
/// @dev ERC-7562 lets a not-yet-deployed account's validation touch its storage in other contracts
///      (the validator's counters) only when the factory is staked: {addStake} is for that.
///      The constructor takes nothing but the validator, so the factory deployed through the
///      deterministic deployment proxy with Valet's salt has the same address on every chain. Its
///      stake therefore cannot have an owner fixed at construction: whoever first adds stake
///      becomes the stake manager (the only one who may unlock and withdraw it, and who may hand
///      the role on); anyone may add to the stake afterwards. `valet deploy` stakes right after
///      deploying and reports a factory whose stake someone else manages.
contract ValetAccountFactory {
    /// @notice The implementation every account delegates to.
    ValetAccount public immutable accountImplementation;
    /// @notice The validator module every new account gets installed.
    address public immutable sessionValidator;
    /// @notice Who may unlock and withdraw the factory's EntryPoint stake (zero until the first
    ///         {addStake}).
    address public stakeManager;

    /// @notice A new account was deployed.
    event AccountCreated(address indexed account, address indexed owner, uint256 salt);
    /// @notice `manager` now manages the factory's stake (first stake, or handed on).
    event StakeManagerSet(address indexed manager);

    /// @notice `caller` is not the stake manager `manager`.
    error NotStakeManager(address caller, address manager);
    /// @notice The stake manager cannot be handed to the zero address.
    error ZeroStakeManager();

    /// @param validator The {SessionKeyValidator} to install in every account.
    constructor(address validator) {
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

    /// @notice Adds `msg.value` to the factory's stake in the EntryPoint, with an unstake delay of
    ///         `unstakeDelaySec` (the EntryPoint refuses to shorten it). The first caller becomes
    ///         the {stakeManager}.
    function addStake(uint32 unstakeDelaySec) external payable {
        if (stakeManager == address(0)) {
            stakeManager = msg.sender;
            emit StakeManagerSet(msg.sender);
        }
        accountImplementation.entryPoint().addStake{value: msg.value}(unstakeDelaySec);
    }

    /// @notice Starts the unstake delay.
    function unlockStake() external onlyStakeManager {
        accountImplementation.entryPoint().unlockStake();
    }

    /// @notice Withdraws the unlocked stake to `to`.
    function withdrawStake(address payable to) external onlyStakeManager {
        accountImplementation.entryPoint().withdrawStake(to);
    }

    /// @notice Hands the stake manager role to `manager`.
    function setStakeManager(address manager) external onlyStakeManager {
        if (manager == address(0)) revert ZeroStakeManager();
        stakeManager = manager;
        emit StakeManagerSet(manager);
    }

    modifier onlyStakeManager() {
        if (msg.sender != stakeManager) revert NotStakeManager(msg.sender, stakeManager);
        _;
    }

    function _salt(address owner, uint256 salt) private pure returns (bytes32) {
        return keccak256(abi.encode(owner, salt));
    }
}
