// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC7579Execution, MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {EntryPointV08Base, IEntryPointV08} from "./utils/EntryPointV08.sol";
import {Vm} from "./utils/Vm.sol";
import {Session, Sessions} from "./utils/Sessions.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";
import {ValetAccount7702} from "../src/ValetAccount7702.sol";
import {ValetNFT} from "../src/demo/ValetNFT.sol";

/// @notice {ValetAccount7702}: plain EOAs delegated to it with EIP-7702, every operation through
///         `handleOps` of the real EntryPoint v0.8 — activation in the first operation, session
///         and owner operations, the lifecycle across delegations, replay across EOAs, and the
///         EOA's own transactions beside its operations.
contract Account7702Test is EntryPointV08Base {
    using Sessions for Session;

    uint256 internal constant ALICE_KEY = 0xA11CE7702;
    uint256 internal constant BOB_KEY = 0xB0B7702;
    uint256 internal constant SESSION_KEY = 0x5E551;
    uint256 internal constant OTHER_KEY = 0xBAD;
    uint48 internal constant T0 = 1_800_000_000;
    uint32 internal constant LANE = 1;

    address internal alice;
    address internal bob;
    address internal sessionSigner;

    SessionKeyValidator internal validator;
    ValetAccount7702 internal implementation;
    ValetNFT internal nft;
    ValetNFT internal otherNft;

    function setUp() public {
        // One second into the sessions' window: EntryPoint v0.8 treats validAfter as exclusive
        // (v0.7: inclusive); see test_validAfter_isExclusiveInV08.
        vm.warp(T0 + 1);
        vm.roll(100);
        deployEntryPointV08();
        validator = new SessionKeyValidator();
        implementation = new ValetAccount7702(address(validator));
        nft = new ValetNFT();
        otherNft = new ValetNFT();
        alice = vm.addr(ALICE_KEY);
        bob = vm.addr(BOB_KEY);
        sessionSigner = vm.addr(SESSION_KEY);
        vm.deal(alice, 10 ether);
        vm.deal(bob, 10 ether);
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(address(validator), "validator");
        vm.label(address(entryPointV08), "EntryPointV08");
    }

    // ------------------------------------------------------------ the v0.8 facts the account relies on

    function test_entryPointV08_atCanonicalAddressWithItsSenderCreator() public view {
        assertEq(address(implementation.entryPoint()), address(entryPointV08), "entryPoint()");
        assertEq(entryPointV08.senderCreator(), implementation.SENDER_CREATOR(), "SenderCreator");
        assertEq(entryPointV08.getPackedUserOpTypeHash(), PACKED_USEROP_TYPEHASH, "PackedUserOperation typehash");
    }

    function test_userOpHash_matchesTheSpecWithThe7702Override() public {
        _delegate(alice);
        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        assertEq(entryPointV08.getUserOpHash(op), userOpHashV08(op, address(implementation)), "plain");
        op.initCode = eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ()));
        assertEq(entryPointV08.getUserOpHash(op), userOpHashV08(op, address(implementation)), "7702 + activate");
        op.initCode = eip7702InitCode("");
        assertEq(entryPointV08.getUserOpHash(op), userOpHashV08(op, address(implementation)), "7702 marker only");
        // The hash commits to the delegate: the same operation for another implementation differs.
        assertTrue(
            entryPointV08.getUserOpHash(op) != userOpHashV08(op, address(0xDEAD)), "delegate is part of the hash"
        );
    }

    /// @dev EntryPoint v0.8 refuses an operation at `block.timestamp == validAfter` (v0.7 took it):
    ///      a session starting "now" is usable from the next second.
    function test_validAfter_isExclusiveInV08() public {
        vm.warp(T0);
        PackedUserOperation memory op = _enableOp(alice, _mintSession(0), ALICE_KEY, _mint(alice, 1), true);
        vm.signAndAttachDelegation(address(implementation), ALICE_KEY);
        submitV08ExpectingFailedOp(op, "AA22 expired or not due");
        vm.warp(T0 + 1);
        vm.signAndAttachDelegation(address(implementation), ALICE_KEY);
        submitV08(op);
        assertEq(nft.ownerOf(1), alice, "one second later");
    }

    // ------------------------------------------------------------ a. the first operation does everything

    function test_firstOp_delegatesActivatesEnablesAndMints() public {
        Session memory s = _mintSession(10);
        uint256 before = alice.balance;
        PackedUserOperation memory op = _enableOp(alice, s, ALICE_KEY, _mint(alice, 2), true);

        assertEq(alice.code.length, 0, "alice is a plain EOA before");
        vm.expectEmit(true, false, false, true, alice);
        emit ValetAccount7702.Activated(address(validator), false);
        // The bundler's type-4 transaction carries alice's authorization (eip7702Auth).
        vm.signAndAttachDelegation(address(implementation), ALICE_KEY);
        submitV08(op);

        assertEq(alice.code, designator(address(implementation)), "alice delegated");
        assertEq(nft.ownerOf(1), alice, "token 1 to the EOA");
        assertEq(nft.ownerOf(2), alice, "token 2 to the EOA");
        assertTrue(validator.isInitialized(alice), "validator installed");
        assertEq(validator.accountOwner(alice), alice, "the EOA owns its sessions");
        assertTrue(
            ValetAccount7702(payable(alice)).isModuleInstalled(MODULE_TYPE_VALIDATOR, address(validator), ""),
            "module listed"
        );
        // The EOA's own ETH paid the prefund; what the operation did not use stays as its deposit.
        assertEq(before - alice.balance, (1_000_000 + 1_000_000 + 60_000) * 2 gwei, "prefund from the EOA's ETH");
        assertTrue(bundler.balance > 0, "the bundler was paid");
        assertEq(bundler.balance + entryPointV08.balanceOf(alice), before - alice.balance, "fee + deposit = prefund");
        (SessionKeyValidator.SessionState state, uint256 uses,) = validator.sessionState(alice, s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Enabled), "session enabled");
        assertEq(uses, 1, "one use");
    }

    function test_firstOp_withoutActivate_refusedNotInstalled() public {
        Session memory s = _mintSession(0);
        PackedUserOperation memory op = _enableOp(alice, s, ALICE_KEY, _mint(alice, 1), false);
        vm.signAndAttachDelegation(address(implementation), ALICE_KEY);
        submitV08ExpectingRevert(op, abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, alice));
    }

    // ------------------------------------------------------------ b. later session operations

    function test_sessionOps_withinLimitsThenRefused() public {
        Session memory s = _mintSession(3);
        _activateAndEnable(alice, ALICE_KEY, s);
        submitV08(_useOp(alice, s, _mint(alice, 5)));
        submitV08(_useOp(alice, s, _mint(alice, 1)));
        assertEq(nft.balanceOf(alice), 1 + 5 + 1, "three session operations minted");

        bytes32 sid = keccak256(s.encode());
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)),
            abi.encodeWithSelector(SessionKeyValidator.SessionUsesExhausted.selector, sid, 3)
        );
    }

    function test_sessionOp_wrongTarget_refused() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        bytes memory call = executeSingle(address(otherNft), 0, abi.encodeCall(ValetNFT.mint, (alice, 1)));
        submitV08ExpectingRevert(
            _useOp(alice, s, call),
            abi.encodeWithSelector(
                SessionKeyValidator.CallNotPermitted.selector, 0, 0, address(otherNft), ValetNFT.mint.selector
            )
        );
    }

    function test_sessionOp_wrongArgument_refused() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        // quantity 6 breaks rule 1 (arg 1 <= 5) of permission 0.
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 6)),
            abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, 0, 0, 1, 1, 6)
        );
        // to = bob breaks rule 0 (arg 0 is the account itself).
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(bob, 1)),
            abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, 0, 0, 0, 0, uint256(uint160(bob)))
        );
    }

    // ------------------------------------------------------------ c. owner operations

    function test_ownerOp_signedByTheEoaOverTheRawHash() public {
        _delegate(alice);
        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        bytes32 hash = entryPointV08.getUserOpHash(op);
        op.signature = sign65(ALICE_KEY, hash);
        submitV08(op);
        assertEq(nft.ownerOf(1), alice, "minted by the owner's operation");
        // No activation needed for the owner: the EOA's key is the account's own signer.
        assertTrue(!validator.isInitialized(alice), "not activated");
    }

    function test_ownerOp_otherKey_refusedAA24() public {
        _delegate(alice);
        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        op.signature = sign65(OTHER_KEY, entryPointV08.getUserOpHash(op));
        submitV08ExpectingFailedOp(op, "AA24 signature error");
    }

    function test_ownerOp_eip191WrappedHash_refusedAA24() public {
        _delegate(alice);
        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        bytes32 hash = entryPointV08.getUserOpHash(op);
        op.signature = sign65(ALICE_KEY, keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", hash)));
        submitV08ExpectingFailedOp(op, "AA24 signature error");
    }

    function test_ownerOp_activatesThrough7702InitCode() public {
        _delegate(alice);
        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        op.initCode = eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ()));
        op.signature = sign65(ALICE_KEY, entryPointV08.getUserOpHash(op));
        submitV08(op);
        assertTrue(validator.isInitialized(alice), "activated");
        assertEq(nft.ownerOf(1), alice, "and minted");
    }

    function test_erc1271_ownerKeyAndSessionKeysNever() public {
        _delegate(alice);
        bytes32 hash = keccak256("message");
        ValetAccount7702 a = ValetAccount7702(payable(alice));
        assertEq(bytes32(a.isValidSignature(hash, sign65(ALICE_KEY, hash))), bytes32(bytes4(0x1626ba7e)), "owner");
        assertEq(bytes32(a.isValidSignature(hash, sign65(OTHER_KEY, hash))), bytes32(bytes4(0xffffffff)), "other");
        _activate(alice);
        bytes memory viaValidator = abi.encodePacked(address(validator), sign65(SESSION_KEY, hash));
        assertEq(bytes32(a.isValidSignature(hash, viaValidator)), bytes32(bytes4(0xffffffff)), "session key");
        assertEq(bytes(a.accountId()), bytes("valet.ValetAccount7702.v0.1.0"), "accountId");
        assertEq(a.owner(), alice, "owner");
    }

    // ------------------------------------------------------------ d. the lifecycle across delegations

    function test_undelegated_sessionOpRefusedAA20() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.etch(alice, ""); // delegation to address 0 clears the code
        submitV08ExpectingFailedOp(_useOpUnsigned(alice, s, _mint(alice, 1)), "AA20 account not deployed");
    }

    function test_undelegatedByAuthorizationToZero_sessionOpRefusedAA20() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.signAndAttachDelegation(address(0), ALICE_KEY);
        nft.totalMinted(); // any transaction carries the authorization
        assertEq(alice.code.length, 0, "code cleared");
        submitV08ExpectingFailedOp(_useOpUnsigned(alice, s, _mint(alice, 1)), "AA20 account not deployed");
    }

    /// @dev What the chain cannot see: a return without `activate` finds the old record, so the
    ///      old session works again and an old unused grant can still enable its session.
    function test_returnWithoutActivate_oldRecordStillLive() public {
        Session memory s = _mintSession(0);
        Session memory unused = _mintSession(0);
        unused.salt = 7;
        bytes memory unusedGrant = _grant(ALICE_KEY, alice, unused);
        _activateAndEnable(alice, ALICE_KEY, s);

        vm.etch(alice, ""); // away
        vm.etch(alice, designator(address(implementation))); // back, no activate

        submitV08(_useOp(alice, s, _mint(alice, 1)));
        submitV08(_sessionOp(alice, 2, unused, _mint(alice, 1), unusedGrant));
        assertEq(nft.balanceOf(alice), 3, "old session and old grant both worked");
    }

    function test_returnWithActivate_voidsOldSessionAndOldGrant() public {
        Session memory s = _mintSession(0);
        Session memory unused = _mintSession(0);
        unused.salt = 7;
        bytes memory unusedGrant = _grant(ALICE_KEY, alice, unused);
        _activateAndEnable(alice, ALICE_KEY, s);
        uint64 oldEpoch = validator.accountEpoch(alice);

        vm.etch(alice, designator(address(0xDE1E6A7E))); // delegated elsewhere
        vm.roll(block.number + 1);
        vm.signAndAttachDelegation(address(implementation), ALICE_KEY); // back ...
        vm.expectEmit(true, false, false, true, alice);
        emit ValetAccount7702.Activated(address(validator), true);
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).activate(); // ... and activated (a type-4 tx to itself)

        uint64 newEpoch = validator.accountEpoch(alice);
        assertTrue(newEpoch != oldEpoch, "epoch moved");
        assertTrue(validator.isInitialized(alice), "installed again");
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(s.encode()), oldEpoch, newEpoch
            )
        );
        submitV08ExpectingRevert(
            _sessionOp(alice, 2, unused, _mint(alice, 1), unusedGrant),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(unused.encode()), oldEpoch, newEpoch
            )
        );

        // A grant for the new epoch works.
        Session memory fresh = _mintSession(0);
        fresh.epoch = newEpoch;
        submitV08(_sessionOp(alice, 3, fresh, _mint(alice, 1), _grant(ALICE_KEY, alice, fresh)));
        assertEq(nft.balanceOf(alice), 2, "first mint and the fresh session's");
    }

    /// @dev The tooling's return path through a bundler: an owner operation with the 0x7702
    ///      initCode calling `activate` voids the old record.
    function test_returnWithActivateInOwnerOp_voidsOldSession() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.etch(alice, "");
        vm.roll(block.number + 1);
        vm.etch(alice, designator(address(implementation)));

        PackedUserOperation memory op = _ownerOp(alice, _mint(alice, 1));
        op.initCode = eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ()));
        op.signature = sign65(ALICE_KEY, entryPointV08.getUserOpHash(op));
        submitV08(op);

        uint64 newEpoch = validator.accountEpoch(alice);
        assertTrue(newEpoch != 0, "epoch moved");
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(s.encode()), 0, newEpoch
            )
        );
    }

    /// @dev The return path that a bundler with ERC-7562 checks accepts: voiding an installed
    ///      record draws a new epoch from BLOCKHASH/PREVRANDAO/NUMBER, which validation may not use,
    ///      so a re-activation goes in the owner operation's callData (execution), not its initCode.
    function test_returnWithActivateInOwnerOpCallData_voidsOldSession() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.etch(alice, "");
        vm.roll(block.number + 1);
        vm.etch(alice, designator(address(implementation)));

        PackedUserOperation memory op =
            _ownerOp(alice, executeSingle(alice, 0, abi.encodeCall(ValetAccount7702.activate, ())));
        op.signature = sign65(ALICE_KEY, entryPointV08.getUserOpHash(op));
        submitV08(op);

        uint64 newEpoch = validator.accountEpoch(alice);
        assertTrue(newEpoch != 0, "epoch moved");
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(s.encode()), 0, newEpoch
            )
        );
    }

    /// @dev A session key holder cannot activate: its operation with the activating initCode
    ///      voids its own session, fails validation, and the activation rolls back with it.
    function test_sessionOpCarryingActivate_rolledBack() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        PackedUserOperation memory op = newOpV08(alice, _sessionKey(LANE), _mint(alice, 1));
        op.initCode = eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ()));
        _signUse(op, s);
        vm.expectRevert(); // SessionEpochMismatch against the epoch activate just drew
        submitV08(op);
        assertEq(validator.accountEpoch(alice), 0, "activation rolled back: epoch unchanged");
        submitV08(_useOp(alice, s, _mint(alice, 1)));
        assertEq(nft.balanceOf(alice), 2, "session still works");
    }

    function test_deactivateThenActivate_voids() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        Session memory unused = _mintSession(0);
        unused.salt = 9;
        bytes memory unusedGrant = _grant(ALICE_KEY, alice, unused);

        vm.expectEmit(true, false, false, false, alice);
        emit ValetAccount7702.Deactivated(address(validator));
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).deactivate();
        assertTrue(!validator.isInitialized(alice), "uninstalled");
        uint64 afterLeave = validator.accountEpoch(alice);
        assertTrue(afterLeave != 0, "epoch moved on deactivate");
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)), abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, alice)
        );

        vm.expectEmit(true, false, false, true, alice);
        emit ValetAccount7702.Activated(address(validator), false);
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).activate();
        assertEq(validator.accountEpoch(alice), afterLeave, "activate after deactivate keeps the epoch");
        submitV08ExpectingRevert(
            _useOp(alice, s, _mint(alice, 1)),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(s.encode()), 0, afterLeave
            )
        );
        submitV08ExpectingRevert(
            _sessionOp(alice, 2, unused, _mint(alice, 1), unusedGrant),
            abi.encodeWithSelector(
                SessionKeyValidator.SessionEpochMismatch.selector, keccak256(unused.encode()), 0, afterLeave
            )
        );
    }

    function test_deactivate_whenNotActive_stillVoids() public {
        _delegate(alice);
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).deactivate();
        assertTrue(validator.accountEpoch(alice) != 0, "epoch moved");
        assertTrue(!validator.isInitialized(alice), "not installed");
    }

    function test_activateTwice_secondVoidsTheFirst() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).activate();
        assertTrue(validator.accountEpoch(alice) != 0, "epoch moved");
        assertTrue(
            ValetAccount7702(payable(alice)).isModuleInstalled(MODULE_TYPE_VALIDATOR, address(validator), ""),
            "listed once more"
        );
    }

    /// @dev A record the account's module list does not show (another delegate installed the
    ///      validator for this EOA, with another owner) is voided and replaced too.
    function test_activate_voidsARecordLeftByAnotherDelegate() public {
        vm.prank(alice);
        validator.onInstall(abi.encode(address(0xE71)));
        assertEq(validator.accountOwner(alice), address(0xE71), "foreign owner");
        _delegate(alice);
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice)).activate();
        assertEq(validator.accountOwner(alice), alice, "the EOA owns its sessions");
        assertTrue(validator.accountEpoch(alice) != 0, "epoch moved");
    }

    // ------------------------------------------------------------ e. no replay across EOAs

    function test_grantOfAnotherEoa_refused() public {
        Session memory s = _mintSession(0);
        _activate(bob);
        bytes32 sid = keccak256(s.encode());
        // alice's grant for alice, replayed for bob
        submitV08ExpectingRevert(
            _sessionOp(bob, LANE, s, _mint(bob, 1), _grant(ALICE_KEY, alice, s)),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, bob, sid)
        );
        // alice's key signing a grant for bob's account
        submitV08ExpectingRevert(
            _sessionOp(bob, LANE, s, _mint(bob, 1), _grant(ALICE_KEY, bob, s)),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, bob, sid)
        );
    }

    function test_activateByStranger_reverts() public {
        _delegate(alice);
        address stranger = address(0x5742);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ValetAccount7702.UnauthorizedActivation.selector, stranger));
        ValetAccount7702(payable(alice)).activate();

        vm.prank(address(entryPointV08));
        vm.expectRevert(
            abi.encodeWithSelector(ValetAccount7702.UnauthorizedActivation.selector, address(entryPointV08))
        );
        ValetAccount7702(payable(alice)).activate();

        vm.prank(bob, bob); // another Valet EOA
        vm.expectRevert(abi.encodeWithSelector(ValetAccount7702.UnauthorizedActivation.selector, bob));
        ValetAccount7702(payable(alice)).activate();

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ValetAccount7702.UnauthorizedActivation.selector, stranger));
        ValetAccount7702(payable(alice)).deactivate();
    }

    /// @dev SenderCreator also calls ordinary factories: an operation of another sender whose
    ///      initCode names alice as its "factory" with `activate()` gets SenderCreator to call it,
    ///      but `activate` returns no address, so the EntryPoint refuses the operation (AA13) and
    ///      the whole `handleOps` — activation included — reverts. Alice's sessions stand.
    function test_activateThroughAnotherSendersFactoryInitCode_rolledBack() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        PackedUserOperation memory op = newOpV08(address(0xA77AC4), 0, "");
        op.initCode = abi.encodePacked(alice, abi.encodeCall(ValetAccount7702.activate, ()));
        op.signature = new bytes(65);
        vm.deal(address(0xA77AC4), 1 ether);
        submitV08ExpectingFailedOp(op, "AA13 initCode failed or OOG");
        assertEq(validator.accountEpoch(alice), 0, "epoch unchanged");
        submitV08(_useOp(alice, s, _mint(alice, 1)));
        assertEq(nft.balanceOf(alice), 2, "session still works");
    }

    /// @dev An operation naming an EOA that never delegated cannot ride on someone else's
    ///      authorization: the EntryPoint refuses the 7702 initCode for a sender without a designator.
    function test_7702InitCode_forUndelegatedEoa_refused() public {
        _delegate(alice);
        Session memory s = _mintSession(0);
        PackedUserOperation memory op = _enableOp(bob, s, BOB_KEY, _mint(bob, 1), true);
        vm.expectRevert(abi.encodeWithSignature("Error(string)", "sender has no code"));
        submitV08(op);
    }

    // ------------------------------------------------------------ f, g. the EOA's own transactions beside

    function test_eoaTransactionsBetweenSessionOps_doNotBreakThem() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        PackedUserOperation memory next = _useOp(alice, s, _mint(alice, 1)); // signed before

        vm.prank(alice, alice);
        (bool ok,) = payable(address(0xCAFE)).call{value: 1 ether}("");
        assertTrue(ok, "value transfer");
        vm.prank(alice, alice);
        nft.mint(alice, 3); // a call made by the EOA
        vm.prank(alice, alice);
        ValetAccount7702(payable(alice))
            .execute(bytes32(0), abi.encodePacked(address(nft), uint256(0), abi.encodeCall(ValetNFT.mint, (alice, 1))));

        submitV08(next);
        assertEq(nft.balanceOf(alice), 1 + 3 + 1 + 1, "all minted");
        assertEq(address(0xCAFE).balance, 1 ether, "transfer landed");
    }

    function test_sameBundle_sessionOpOwnerOpAndAnotherAccount() public {
        Session memory s = _mintSession(0);
        _activateAndEnable(alice, ALICE_KEY, s);
        vm.etch(bob, designator(address(implementation)));

        // Same block: alice's own transaction first.
        vm.prank(alice, alice);
        nft.mint(alice, 2);

        PackedUserOperation[] memory ops = new PackedUserOperation[](3);
        ops[0] = _useOp(alice, s, _mint(alice, 1));
        ops[1] = _ownerOp(alice, _mint(alice, 1));
        ops[1].signature = sign65(ALICE_KEY, entryPointV08.getUserOpHash(ops[1]));
        ops[2] = _ownerOp(bob, _mint(bob, 4));
        ops[2].initCode = eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ()));
        ops[2].signature = sign65(BOB_KEY, entryPointV08.getUserOpHash(ops[2]));
        vm.recordLogs();
        submitV08(ops);

        assertEq(nft.balanceOf(alice), 1 + 2 + 1 + 1, "alice: first op, own tx, session op, owner op");
        assertEq(nft.balanceOf(bob), 4, "bob");
        assertTrue(validator.isInitialized(bob), "bob activated in the same bundle");
        assertEq(entryPointV08.getNonce(alice, _sessionKey(LANE)), uint256(_sessionKey(LANE)) << 64 | 2, "lane");
        assertEq(entryPointV08.getNonce(alice, 0), 1, "owner lane");
    }

    // ------------------------------------------------------------ helpers

    /// @dev mint(to == account, quantity <= 5) on the NFT, `maxUses` operations (0: unlimited), 1 hour.
    function _mintSession(uint24 maxUses) internal view returns (Session memory s) {
        s = Sessions.session(sessionSigner, T0, T0 + 3600);
        s.maxUses = maxUses;
        s = s.withPermission(
            Sessions.withRule(
                Sessions.withRule(Sessions.permission(address(nft), ValetNFT.mint.selector), Sessions.self(0)),
                Sessions.rule(1, Sessions.LTE, 5)
            )
        );
    }

    function _mint(address to, uint256 quantity) internal view returns (bytes memory) {
        return executeSingle(address(nft), 0, abi.encodeCall(ValetNFT.mint, (to, quantity)));
    }

    function _sessionKey(uint32 lane) internal view returns (uint192) {
        return (uint192(uint160(address(validator))) << 32) | lane;
    }

    function _delegate(address eoa) internal {
        vm.etch(eoa, designator(address(implementation)));
    }

    function _activate(address eoa) internal {
        _delegate(eoa);
        vm.prank(eoa, eoa);
        ValetAccount7702(payable(eoa)).activate();
    }

    function _grant(uint256 key, address account, Session memory s) internal view returns (bytes memory) {
        return sign65(key, validator.grantDigest(account, s.encode()));
    }

    /// @dev An owner-lane operation, unsigned.
    function _ownerOp(address eoa, bytes memory callData) internal view returns (PackedUserOperation memory) {
        return newOpV08(eoa, 0, callData);
    }

    /// @dev The first operation of `eoa`: enable `s` with `ownerKey`'s grant and make `callData`'s
    ///      call, with the activating initCode if `withActivate`. Hashed before the delegation lands.
    function _enableOp(address eoa, Session memory s, uint256 ownerKey, bytes memory callData, bool withActivate)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = newOpV08(eoa, _sessionKey(LANE), callData);
        op.initCode =
            withActivate ? eip7702InitCode(abi.encodeCall(ValetAccount7702.activate, ())) : eip7702InitCode("");
        bytes memory packed = s.encode();
        bytes memory prefix = enablePrefixV08(packed, 0, hex"00", _grant(ownerKey, eoa, s));
        bytes32 hash = userOpHashV08(op, address(implementation));
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigestV08(hash, packed, 0, hex"00")));
    }

    /// @dev Delegates `eoa` and activates it with its first operation, enabling `s`.
    function _activateAndEnable(address eoa, uint256 ownerKey, Session memory s) internal {
        PackedUserOperation memory op = _enableOp(eoa, s, ownerKey, _mint(eoa, 1), true);
        vm.signAndAttachDelegation(address(implementation), ownerKey);
        submitV08(op);
    }

    /// @dev An enable-and-use operation of `s` on `lane` with the given grant (no initCode).
    function _sessionOp(address eoa, uint32 lane, Session memory s, bytes memory callData, bytes memory grantSig)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = newOpV08(eoa, _sessionKey(lane), callData);
        bytes memory packed = s.encode();
        bytes memory prefix = enablePrefixV08(packed, 0, hex"00", grantSig);
        op.signature = abi.encodePacked(
            prefix, sign65(SESSION_KEY, keyDigestV08(userOpHashV08(op, address(0)), packed, 0, hex"00"))
        );
    }

    /// @dev A use operation of the enabled session `s`.
    function _useOp(address eoa, Session memory s, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = newOpV08(eoa, _sessionKey(LANE), callData);
        _signUse(op, s);
    }

    function _useOpUnsigned(address eoa, Session memory s, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = newOpV08(eoa, _sessionKey(LANE), callData);
        op.signature = abi.encodePacked(usePrefixV08(s.encode(), 0, hex"00"), new bytes(65));
    }

    function _signUse(PackedUserOperation memory op, Session memory s) internal view {
        bytes memory packed = s.encode();
        bytes32 hash = userOpHashV08(op, address(implementation));
        op.signature = abi.encodePacked(
            usePrefixV08(packed, 0, hex"00"), sign65(SESSION_KEY, keyDigestV08(hash, packed, 0, hex"00"))
        );
    }
}
