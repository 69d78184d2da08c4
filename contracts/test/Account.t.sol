// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {Account as OZAccount} from "@openzeppelin/contracts/account/Account.sol";
import {ValetTestBase, IEntryPointV07} from "./utils/ValetTestBase.sol";
import {ValetAccount} from "../src/ValetAccount.sol";
import {ValetAccountFactory} from "../src/ValetAccountFactory.sol";

/// @notice The account and its factory.
contract AccountTest is ValetTestBase {
    function test_factory_addressIsKnownBeforeDeployment() public {
        address predicted = factory.getAddress(owner, 5);
        ValetAccount created = factory.createAccount(owner, 5);
        assertEq(address(created), predicted, "CREATE2 address");
        assertEq(address(factory.createAccount(owner, 5)), predicted, "idempotent");
        assertTrue(factory.getAddress(owner, 6) != predicted, "salt matters");
        assertTrue(factory.getAddress(address(0xB0B), 5) != predicted, "owner matters");
    }

    function test_account_installsTheValidatorAndPointsAtEntryPointV07() public view {
        assertTrue(account.isModuleInstalled(MODULE_TYPE_VALIDATOR, address(validator), ""), "validator installed");
        assertTrue(validator.isInitialized(address(account)), "the validator knows it");
        assertEq(validator.accountOwner(address(account)), owner, "grants are the owner's");
        assertEq(account.sessionValidator(), address(validator), "the implementation's validator");
        assertEq(address(account.entryPoint()), address(entryPoint), "EntryPoint v0.7");
        assertEq(account.owner(), owner, "owner");
    }

    function test_account_initializesOnce() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(address(0xBAD));
        ValetAccount implementation = factory.accountImplementation();
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(address(0xBAD));
    }

    function test_factory_refusesAZeroOwner() public {
        vm.expectRevert(ValetAccount.ZeroOwner.selector);
        factory.createAccount(address(0), 1);
    }

    function test_firstOwnerOperation_deploysTheAccount() public {
        address fresh = factory.getAddress(owner, 9);
        vm.deal(fresh, 1 ether);
        PackedUserOperation memory op = newOp(fresh, 0, mintCall(fresh, 1));
        op.initCode = abi.encodePacked(address(factory), abi.encodeCall(factory.createAccount, (owner, 9)));
        op.signature = sign65(OWNER_KEY, signedHash(op));
        submit(op);
        assertEq(nft.balanceOf(fresh), 1, "deployed and minted");
    }

    function test_onlyTheEntryPointOrTheAccount_execute() public {
        vm.expectRevert(abi.encodeWithSelector(OZAccount.AccountUnauthorized.selector, address(this)));
        account.execute(bytes32(0), abi.encodePacked(address(nft), uint256(0), abi.encodeCall(nft.mint, (address(this), 1))));
    }

    function test_factoryStake_firstStakerManagesIt() public {
        assertEq(factory.stakeManager(), address(0), "no manager before the first stake");
        vm.deal(address(this), 2 ether);
        factory.addStake{value: 1 ether}(1 days);
        assertEq(factory.stakeManager(), address(this), "the first staker manages the stake");

        // Anyone may add to the stake; it stays managed by the first staker.
        address donor = address(0xD0);
        vm.deal(donor, 1 ether);
        vm.prank(donor);
        factory.addStake{value: 1 ether}(1 days);
        assertEq(factory.stakeManager(), address(this), "a later staker does not take over");
        (, bytes memory info) =
            address(entryPoint).staticcall(abi.encodeWithSignature("getDepositInfo(address)", address(factory)));
        (, bool staked, uint112 stake,,) = abi.decode(info, (uint256, bool, uint112, uint32, uint48));
        assertTrue(staked, "staked");
        assertEq(stake, 2 ether, "both stakes count");

        // Nobody else may unlock, withdraw or hand the role on.
        vm.startPrank(donor);
        vm.expectRevert(abi.encodeWithSelector(ValetAccountFactory.NotStakeManager.selector, donor, address(this)));
        factory.unlockStake();
        vm.expectRevert(abi.encodeWithSelector(ValetAccountFactory.NotStakeManager.selector, donor, address(this)));
        factory.withdrawStake(payable(donor));
        vm.expectRevert(abi.encodeWithSelector(ValetAccountFactory.NotStakeManager.selector, donor, address(this)));
        factory.setStakeManager(donor);
        vm.stopPrank();

        vm.expectRevert(ValetAccountFactory.ZeroStakeManager.selector);
        factory.setStakeManager(address(0));
        factory.setStakeManager(donor);
        assertEq(factory.stakeManager(), donor, "handed on");
        vm.prank(donor);
        factory.unlockStake();
    }
}
