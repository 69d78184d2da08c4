// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session, Sessions} from "./utils/Sessions.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";
import {ValetAccount} from "../src/ValetAccount.sol";
import {ValetAccountFactory} from "../src/ValetAccountFactory.sol";

/// @notice One owner signature for sessions on several chains (mode 2), through the real
///         EntryPoint. Each chain is simulated by `vm.chainId` on a snapshot of the same state,
///         so every chain starts from the same accounts; per-chain counters on two real chains are
///         tested in Rust (crates/valet-client/tests/multichain.rs).
contract MultichainTest is ValetTestBase {
    using Sessions for Session;

    uint256 internal constant CHAIN_A = 8453;
    uint256 internal constant CHAIN_B = 10;
    uint256 internal constant CHAIN_C = 42161;

    /// @dev The struct hash of one entry, computed here from the type strings, not by the validator.
    function entry(uint256 chainId, address validator_, address acct, Session memory s) internal pure returns (bytes32) {
        bytes32 typehash = keccak256(
            "ChainGrant(uint256 chainId,address validator,address account,Session session)"
            "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
            "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
            "Rule(uint8 arg,uint8 op,bytes32[] values)"
            "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
            "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
        );
        return keccak256(abi.encode(typehash, chainId, validator_, acct, s.hashStruct()));
    }

    function multichainDigest(bytes32[] memory entries) internal pure returns (bytes32) {
        bytes32 typehash = keccak256(
            "MultichainGrant(ChainGrant[] grants)"
            "ChainGrant(uint256 chainId,address validator,address account,Session session)"
            "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
            "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
            "Rule(uint8 arg,uint8 op,bytes32[] values)"
            "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
            "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
        );
        bytes32 domain =
            keccak256(abi.encode(keccak256("EIP712Domain(string name,string version)"), keccak256("Valet"), keccak256("1")));
        return keccak256(
            abi.encodePacked(hex"1901", domain, keccak256(abi.encode(typehash, keccak256(abi.encodePacked(entries)))))
        );
    }

    /// @dev The owner's one signature over `s` on chains A and B, for `account` and `validator`.
    function entriesAB(Session memory s) internal view returns (bytes32[] memory entries) {
        entries = new bytes32[](2);
        entries[0] = entry(CHAIN_A, address(validator), address(account), s);
        entries[1] = entry(CHAIN_B, address(validator), address(account), s);
    }

    /// @dev The mode-2 grant: K ‖ p ‖ every entry but the p-th ‖ the owner's signature.
    function proof(bytes32[] memory entries, uint8 position, bytes memory ownerSig) internal pure returns (bytes memory out) {
        out = abi.encodePacked(uint8(entries.length), position);
        for (uint256 i = 0; i < entries.length; ++i) {
            if (i != position) out = abi.encodePacked(out, entries[i]);
        }
        out = abi.encodePacked(out, ownerSig);
    }

    function multichainPrefix(Session memory s, bytes memory grant_) internal pure returns (bytes memory) {
        bytes memory packed = s.encode();
        return abi.encodePacked(
            uint8(2), uint16(packed.length), packed, uint48(0), uint8(1), uint8(0), uint16(grant_.length), grant_
        );
    }

    function multichainOp(Session memory s, bytes memory grant_) internal view returns (PackedUserOperation memory) {
        return sessionOp(address(account), 1, mintCall(address(account), 1), multichainPrefix(s, grant_), SESSION_KEY);
    }

    function signedAB(Session memory s) internal view returns (bytes32[] memory entries, bytes memory sig) {
        entries = entriesAB(s);
        sig = sign65(OWNER_KEY, multichainDigest(entries));
    }

    function test_multichainGrant_enablesTheSessionOnEveryListedChain() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        uint256 start = vm.snapshotState();
        for (uint8 p = 0; p < 2; ++p) {
            vm.revertToState(start);
            vm.chainId(p == 0 ? CHAIN_A : CHAIN_B);
            submit(multichainOp(s, proof(entries, p, sig)));
            assertEq(nft.balanceOf(address(account)), 1, "minted by the enabling operation");
            (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
            assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Enabled), "enabled");
            assertEq(validator.permissionUses(address(account), id(s), 0), 1, "the mint permission counted once");
            // Later operations use it as any enabled session.
            submit(useOp(s, mintCall(address(account), 1), 0));
            assertEq(nft.balanceOf(address(account)), 2, "minted by the next operation");
        }
    }

    function test_multichainGrant_theValidatorsViewsAgreeWithTheTypeStrings() public {
        Session memory s = mintSession();
        vm.chainId(CHAIN_B);
        assertEq(validator.chainGrantHash(address(account), s.encode()), entriesAB(s)[1], "chain entry");
        assertEq(validator.multichainGrantDigest(entriesAB(s)), multichainDigest(entriesAB(s)), "digest");
    }

    function test_multichainGrant_isRefusedOnAChainItDoesNotList() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_C);
        for (uint8 p = 0; p < 2; ++p) {
            submitExpectingRevert(
                multichainOp(s, proof(entries, p, sig)),
                abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
            );
        }
    }

    function test_multichainGrant_atTheWrongPositionIsRefused() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_A);
        // Chain A's entry is at 0; claiming 1 puts the computed entry after B's: another list.
        submitExpectingRevert(
            multichainOp(s, proof(entries, 1, sig)),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
    }

    function test_multichainGrant_cannotBeReplayedToAnotherAccountOfTheSameOwner() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        ValetAccount other = factory.createAccount(owner, 1);
        vm.deal(address(other), 10 ether);
        vm.chainId(CHAIN_A);
        bytes memory prefix = abi.encodePacked(
            uint8(2), uint16(s.encode().length), s.encode(), uint48(0), uint8(1), uint8(0)
        );
        bytes memory g = proof(entries, 0, sig);
        PackedUserOperation memory op = sessionOp(
            address(other), 1, mintCall(address(other), 1), abi.encodePacked(prefix, uint16(g.length), g), SESSION_KEY
        );
        submitExpectingRevert(
            op, abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(other), id(s))
        );
    }

    function test_multichainGrant_cannotBeReplayedToAnotherValidator() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        // A second deployment of the same validator, with its own account of the same owner.
        SessionKeyValidator second = new SessionKeyValidator();
        ValetAccount other = new ValetAccountFactory(address(second)).createAccount(owner, 0);
        vm.deal(address(other), 10 ether);
        vm.chainId(CHAIN_A);
        bytes memory g = proof(entries, 0, sig);
        bytes memory packed = s.encode();
        bytes memory prefix = abi.encodePacked(
            uint8(2), uint16(packed.length), packed, uint48(0), uint8(1), uint8(0), uint16(g.length), g
        );
        PackedUserOperation memory op = newOp(address(other), (uint192(uint160(address(second))) << 32) | 1, mintCall(address(other), 1));
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(entryPoint.getUserOpHash(op), prefix)));
        submitExpectingRevert(
            op, abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(other), id(s))
        );
    }

    function test_singleAndMultichainSignaturesAreNotInterchangeable() public {
        Session memory s = mintSession();
        (bytes32[] memory entries,) = signedAB(s);
        vm.chainId(CHAIN_A);
        bytes memory single_ = grant(s, address(account));
        // A single-chain grant signature inside a multichain proof…
        submitExpectingRevert(
            multichainOp(s, proof(entries, 0, single_)),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
        // …and a multichain signature as a single-chain grant.
        bytes memory multi = sign65(OWNER_KEY, multichainDigest(entries));
        submitExpectingRevert(
            sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", multi), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
    }

    function test_multichainGrant_signedByAnotherKeyIsRefused() public {
        Session memory s = mintSession();
        bytes32[] memory entries = entriesAB(s);
        vm.chainId(CHAIN_A);
        submitExpectingRevert(
            multichainOp(s, proof(entries, 0, sign65(OTHER_KEY, multichainDigest(entries)))),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
    }

    function test_multichainGrant_aSingleEntryListWorks() public {
        Session memory s = mintSession();
        vm.chainId(CHAIN_A);
        bytes32[] memory entries = new bytes32[](1);
        entries[0] = entry(CHAIN_A, address(validator), address(account), s);
        submit(multichainOp(s, proof(entries, 0, sign65(OWNER_KEY, multichainDigest(entries)))));
        assertEq(nft.balanceOf(address(account)), 1, "minted by the enabling operation");
    }

    function test_multichainGrant_malformedProofsNameTheirOffset() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_A);
        uint256 at = 3 + s.encode().length + 6 + 1 + 1 + 2; // where the grant starts
        submitExpectingRevert(
            multichainOp(s, abi.encodePacked(uint8(0), uint8(0), sig)),
            abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, at, "not 1..32 chains")
        );
        submitExpectingRevert(
            multichainOp(s, abi.encodePacked(uint8(33), uint8(0), sig)),
            abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, at, "not 1..32 chains")
        );
        submitExpectingRevert(
            multichainOp(s, abi.encodePacked(uint8(2), uint8(2), entries[1], sig)),
            abi.encodeWithSelector(
                SessionKeyValidator.MalformedSignature.selector, at + 1, "chain position not below the chain count"
            )
        );
        // Three chains claimed, one other entry given (32 bytes) and 65 of signature: 99 < 2 + 64.
        submitExpectingRevert(
            multichainOp(s, abi.encodePacked(uint8(3), uint8(0), entries[1])),
            abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, at + 34, "chain grants cut short")
        );
        submitExpectingRevert(
            multichainOp(s, hex"02"),
            abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, at, "chain count and position cut short")
        );
    }

    function test_multichainGrant_isVoidAfterARevokeAll() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_A);
        vm.prank(address(account));
        validator.revokeAllSessions();
        uint64 current = validator.accountEpoch(address(account));
        submitExpectingRevert(
            multichainOp(s, proof(entries, 0, sig)),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s), uint64(0), current)
        );
    }

    function test_multichainGrant_enablesOnce() public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_A);
        submit(multichainOp(s, proof(entries, 0, sig)));
        submitExpectingRevert(
            multichainOp(s, proof(entries, 0, sig)),
            abi.encodeWithSelector(SessionKeyValidator.SessionAlreadyEnabled.selector, id(s))
        );
    }

    /// Whatever proof a key holder makes up — any chain count, position and entries, with the
    /// owner's real signature of another list — the session is never enabled: the operation is
    /// refused with a malformed-signature or invalid-grant error, never a panic.
    function testFuzz_madeUpProofsNeverEnable(uint8 chains, uint8 position, bytes32 entryA, bytes32 entryB) public {
        Session memory s = mintSession();
        (bytes32[] memory entries, bytes memory sig) = signedAB(s);
        vm.chainId(CHAIN_A);
        // Not the signed list: B's real entry must not be among the made-up ones.
        vm.assume(entryA != entries[1] && entryB != entries[1]);
        bytes memory made = abi.encodePacked(chains, position, entryA, entryB, sig);
        PackedUserOperation memory op = multichainOp(s, made);
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        vm.prank(bundler, bundler);
        (bool ok, bytes memory err) =
            address(entryPoint).call(abi.encodeWithSelector(entryPoint.handleOps.selector, ops, bundler));
        assertEq(ok ? 1 : 0, 0, "refused");
        // FailedOpWithRevert(0, "AA23 reverted", inner): inner is one of the validator's errors.
        assertEq(bytes32(bytes4(err)), bytes32(IEntryPointFailures.FailedOpWithRevert.selector), "a validation refusal");
        (,, bytes memory inner) = abi.decode(_tail(err), (uint256, string, bytes));
        bytes4 reason = bytes4(inner);
        assertEq(
            reason == SessionKeyValidator.MalformedSignature.selector
                || reason == SessionKeyValidator.InvalidGrantSignature.selector
                ? 1
                : 0,
            1,
            "malformed or invalid grant"
        );
        (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.None), "never enabled");
    }

    function _tail(bytes memory err) private pure returns (bytes memory out) {
        out = new bytes(err.length - 4);
        for (uint256 i = 0; i < out.length; ++i) {
            out[i] = err[i + 4];
        }
    }
}

/// The EntryPoint's validation failure, as the fuzz test decodes it.
interface IEntryPointFailures {
    error FailedOpWithRevert(uint256 opIndex, string reason, bytes inner);
}
