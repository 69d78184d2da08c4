// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC7579Execution, IERC7579ModuleConfig, MODULE_TYPE_VALIDATOR, MODULE_TYPE_EXECUTOR} from
    "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session, Sessions} from "./utils/Sessions.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";
import {SessionLib} from "../src/libraries/SessionLib.sol";
import {ExecutionLib} from "../src/libraries/ExecutionLib.sol";
import {ValetNFT} from "../src/demo/ValetNFT.sol";

/// @notice What an attacker holding a session key would try, each refused by the chain.
contract BypassTest is ValetTestBase {
    using Sessions for Session;

    Session internal s;

    function setUp() public override {
        super.setUp();
        s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
    }

    function attempt(bytes memory callData, bytes memory indices) internal view returns (PackedUserOperation memory) {
        return sessionOp(address(account), 1, callData, usePrefix(s, 0, indices), SESSION_KEY);
    }

    function mintData(address to, uint256 quantity) internal pure returns (bytes memory) {
        return abi.encodeCall(ValetNFT.mint, (to, quantity));
    }

    function refusedAs(PackedUserOperation memory op, bytes memory inner) internal {
        uint256 before = nft.balanceOf(address(account));
        submitExpectingRevert(op, inner);
        assertEq(nft.balanceOf(address(account)), before, "nothing happened");
    }

    // ------------------------------------------------------------------ execution modes

    function test_delegatecallMode_refused() public {
        bytes32 mode = bytes32(bytes1(0xff));
        bytes memory data = abi.encodeCall(IERC7579Execution.execute, (mode, abi.encodePacked(address(nft), mintData(address(account), 1))));
        refusedAs(attempt(data, hex"00"), abi.encodeWithSelector(ExecutionLib.UnsupportedExecutionMode.selector, mode));
    }

    function test_tryExecType_refused() public {
        bytes32 mode = bytes32(bytes2(0x0001));
        bytes memory data = abi.encodeCall(IERC7579Execution.execute, (mode, abi.encodePacked(address(nft), uint256(0), mintData(address(account), 1))));
        refusedAs(attempt(data, hex"00"), abi.encodeWithSelector(ExecutionLib.UnsupportedExecutionMode.selector, mode));
    }

    function test_modeSelectorOrPayload_refused() public {
        bytes32 mode = bytes32(uint256(1)); // single call type with a payload byte set
        bytes memory data = abi.encodeCall(IERC7579Execution.execute, (mode, abi.encodePacked(address(nft), uint256(0), mintData(address(account), 1))));
        refusedAs(attempt(data, hex"00"), abi.encodeWithSelector(ExecutionLib.UnsupportedExecutionMode.selector, mode));
    }

    function test_otherAccountFunctions_refused() public {
        bytes memory fromExecutor = abi.encodeCall(
            IERC7579Execution.executeFromExecutor, (bytes32(0), abi.encodePacked(address(nft), uint256(0), mintData(address(account), 1)))
        );
        refusedAs(
            attempt(fromExecutor, hex"00"),
            abi.encodeWithSelector(ExecutionLib.UnsupportedAccountFunction.selector, IERC7579Execution.executeFromExecutor.selector)
        );
        bytes memory install = abi.encodeCall(IERC7579ModuleConfig.installModule, (MODULE_TYPE_EXECUTOR, address(0xBAD), ""));
        refusedAs(
            attempt(install, hex"00"),
            abi.encodeWithSelector(ExecutionLib.UnsupportedAccountFunction.selector, IERC7579ModuleConfig.installModule.selector)
        );
        refusedAs(attempt("", hex"00"), abi.encodeWithSelector(ExecutionLib.UnsupportedAccountFunction.selector, bytes4(0)));
    }

    // ------------------------------------------------------------------ forbidden targets

    function test_selfCall_toManageModules_refused() public {
        // Even a session that names the account as a target can't call it.
        Session memory evil = Sessions.session(sessionSigner, T0, T0 + 3600);
        evil = evil.withPermission(Sessions.permission(address(account), IERC7579ModuleConfig.uninstallModule.selector));
        evil.salt = 7;
        bytes memory uninstall = abi.encodeCall(IERC7579ModuleConfig.uninstallModule, (MODULE_TYPE_VALIDATOR, address(validator), ""));
        submitExpectingRevert(
            sessionOp(address(account), 2, single(address(account), 0, uninstall), enablePrefix(evil, 0, hex"00", grant(evil, address(account))), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.ForbiddenTarget.selector, 0, address(account))
        );
        assertTrue(account.isModuleInstalled(MODULE_TYPE_VALIDATOR, address(validator), ""), "still installed");
    }

    function test_callToTheValidator_refused() public {
        Session memory evil = Sessions.session(sessionSigner, T0, T0 + 3600);
        evil = evil.withPermission(Sessions.permission(address(validator), SessionKeyValidator.enableSession.selector));
        evil.salt = 8;
        Session memory wider = mintSession();
        wider.permissions[0].maxUses = 0;
        wider.salt = 9;
        bytes memory enableWider = abi.encodeCall(SessionKeyValidator.enableSession, (wider.encode()));
        submitExpectingRevert(
            sessionOp(address(account), 2, single(address(validator), 0, enableWider), enablePrefix(evil, 0, hex"00", grant(evil, address(account))), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.ForbiddenTarget.selector, 0, address(validator))
        );
    }

    function test_batch_withOneDisallowedCall_refused() public {
        Call[] memory calls = new Call[](2);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        calls[1] = Call(address(nft), 0, abi.encodeWithSignature("setApprovalForAll(address,bool)", address(0xBAD), true));
        refusedAs(
            attempt(batch(calls), hex"0000"),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 1, 0, address(nft), bytes4(calls[1].callData))
        );
        calls[1] = Call(address(nft), 0, mintData(address(0xBAD), 5));
        refusedAs(
            attempt(batch(calls), hex"0000"),
            abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, 1, 0, 0, 0, uint256(uint160(address(0xBAD))))
        );
    }

    function test_callCountMismatch_refused() public {
        refusedAs(attempt(mintCall(address(account), 1), hex"0000"), abi.encodeWithSelector(SessionKeyValidator.CallCountMismatch.selector, 1, 2));
        Call[] memory calls = new Call[](2);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        calls[1] = calls[0];
        refusedAs(attempt(batch(calls), hex"00"), abi.encodeWithSelector(SessionKeyValidator.CallCountMismatch.selector, 2, 1));
    }

    // ------------------------------------------------------------------ non-canonical encodings

    function _execute(bytes32 mode, bytes memory exec) internal pure returns (bytes memory) {
        return abi.encodeCall(IERC7579Execution.execute, (mode, exec));
    }

    function test_nonCanonical_bytesOffset_refused() public {
        // The account's decoder follows the offset to a second, hidden payload; the validator refuses.
        bytes memory allowed = abi.encodePacked(address(nft), uint256(0), mintData(address(account), 1));
        bytes memory hidden = abi.encodePacked(address(nft), uint256(0), mintData(address(0xBAD), 20));
        bytes memory data = abi.encodePacked(
            IERC7579Execution.execute.selector, bytes32(0), uint256(0x40 + 32 + 160), uint256(allowed.length), allowed, new bytes(160 - allowed.length),
            uint256(hidden.length), hidden, new bytes(32 - hidden.length % 32)
        );
        refusedAs(attempt(data, hex"00"), abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "bytes offset", 36));
    }

    function test_nonCanonical_trailingBytes_refused() public {
        bytes memory data = abi.encodePacked(mintCall(address(account), 1), uint256(0xdead));
        refusedAs(attempt(data, hex"00"), abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "bytes length", 68));
    }

    function test_nonCanonical_batchElementOffset_refused() public {
        Call[] memory calls = new Call[](1);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        bytes memory exec = abi.encode(calls);
        // Point the element's head 32 bytes further (and pad so lengths stay plausible).
        assembly ("memory-safe") {
            mstore(add(exec, 0x60), add(mload(add(exec, 0x60)), 0x20))
        }
        exec = abi.encodePacked(exec, uint256(0));
        refusedAs(
            attempt(_execute(bytes32(bytes1(0x01)), exec), hex"00"),
            abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "element offset", 64)
        );
    }

    function test_nonCanonical_dirtyTargetBits_refused() public {
        Call[] memory calls = new Call[](1);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        bytes memory exec = abi.encode(calls);
        // Set a high bit in the target word of element 0 (at 0x20 + 0x20 + 0x20 = 0x60 in the data).
        assembly ("memory-safe") {
            let p := add(add(exec, 0x20), 0x60)
            mstore(p, or(mload(p), shl(255, 1)))
        }
        refusedAs(
            attempt(_execute(bytes32(bytes1(0x01)), exec), hex"00"),
            abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "target", 96)
        );
    }

    function test_nonCanonical_callDataOffset_refused() public {
        Call[] memory calls = new Call[](1);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        bytes memory exec = abi.encode(calls);
        assembly ("memory-safe") {
            let p := add(add(exec, 0x20), 0xa0) // element 0's callData offset word
            mstore(p, 0x80)
        }
        refusedAs(
            attempt(_execute(bytes32(bytes1(0x01)), exec), hex"00"),
            abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "callData offset", 160)
        );
    }

    function test_nonCanonical_batchTrailingElement_refused() public {
        Call[] memory calls = new Call[](1);
        calls[0] = Call(address(nft), 0, mintData(address(account), 1));
        bytes memory exec = abi.encodePacked(abi.encode(calls), abi.encode(address(nft), uint256(0)));
        refusedAs(
            attempt(_execute(bytes32(bytes1(0x01)), exec), hex"00"),
            abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "batch end", exec.length)
        );
    }

    function test_singleExecution_tooShort_refused() public {
        refusedAs(
            attempt(_execute(bytes32(0), abi.encodePacked(address(nft))), hex"00"),
            abi.encodeWithSelector(ExecutionLib.NonCanonicalExecution.selector, "single execution", 100)
        );
    }

    // ------------------------------------------------------------------ malformed signatures

    function _withSignature(bytes memory signature) internal view returns (PackedUserOperation memory op) {
        op = newOp(address(account), sessionNonceKey(1), mintCall(address(account), 1));
        op.signature = signature;
    }

    function test_malformedSignatures_refusedWithTheirReason() public {
        submitExpectingRevert(
            _withSignature(hex"00"), abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, 1, "header, session, claimedTime or call indices cut short")
        );
        bytes memory prefix = usePrefix(s, 0, hex"00");
        PackedUserOperation memory op = _withSignature(abi.encodePacked(prefix, new bytes(64)));
        submitExpectingRevert(
            op, abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, prefix.length, "session key signature not 65 bytes")
        );
        prefix[0] = 0x03;
        submitExpectingRevert(
            _withSignature(abi.encodePacked(prefix, new bytes(65))), abi.encodeWithSelector(SessionKeyValidator.UnknownSignatureMode.selector, 3)
        );
    }

    function test_zeroCalls_refused() public {
        bytes memory packed = s.encode();
        bytes memory sig = abi.encodePacked(uint8(0), uint16(packed.length), packed, uint48(0), uint8(0), new bytes(65));
        submitExpectingRevert(
            _withSignature(sig),
            abi.encodeWithSelector(SessionKeyValidator.MalformedSignature.selector, 3 + packed.length + 6, "not 1..32 calls")
        );
    }

    function test_malformedSessions_refusedAtEnable() public {
        Session memory bad = mintSession();
        bad.salt = 77;
        bad.permissions[0].rules[1].op = 9;
        _expectMalformed(bad, "unknown rule op");

        bad = mintSession();
        bad.permissions[0].rules[1] = Sessions.range(1, 9, 5);
        _expectMalformed(bad, "IN_RANGE minimum above maximum");

        bad = mintSession();
        bad.permissions[0].rules[0].values = new bytes32[](1); // SELF carries no value
        _expectMalformed(bad, "SELF takes no values");

        bad = mintSession();
        bad.validUntil = bad.validAfter;
        _expectMalformed(bad, "validUntil is not after validAfter");

        bad = mintSession();
        bad.permissions = new Permission_[](0);
        _expectMalformed(bad, "not 1..16 permissions");

        bad = mintSession();
        for (uint256 i = 0; i < 9; ++i) {
            bad = bad.withPermission(Sessions.permission(address(nft), ValetNFT.mint.selector));
        }
        bad.permissions[9].maxUses = 1;
        _expectMalformed(bad, "only permissions 0..8 may have maxUses");

        bad = mintSession();
        bad = bad.withLimit(0, address(token), 1, 0);
        _expectMalformed(bad, "native or fee limit names a token");

        bad = mintSession();
        bad = bad.withLimit(Sessions.FEES, address(token), 1, 0);
        _expectMalformed(bad, "native or fee limit names a token");

        bad = mintSession();
        bad = bad.withLimit(3, address(0), 1, 0);
        _expectMalformed(bad, "unknown limit kind");

        bad = mintSession();
        bad.validAfter = 0;
        _expectMalformed(bad, "validAfter is zero");

        bad = mintSession();
        bad = bad.withPaymaster(address(0));
        _expectMalformed(bad, "paymaster is zero");

        bad = mintSession();
        for (uint256 i = 1; i <= 9; ++i) {
            bad = bad.withPaymaster(address(uint160(i)));
        }
        _expectMalformed(bad, "more than 8 paymasters");
    }

    function test_paymastersCutShort_refused() public {
        bytes memory full = s.encode();
        // The header and two bytes more, claiming a paymaster: its 20 bytes are not there.
        bytes memory packed = new bytes(60);
        for (uint256 i = 0; i < 60; ++i) {
            packed[i] = full[i];
        }
        packed[57] = 0x01;
        (bool ok, bytes memory ret) = address(validator).call(abi.encodeCall(validator.checkSessionEncoding, (packed)));
        assertTrue(!ok, "refused");
        assertEq(ret, abi.encodeWithSelector(SessionLib.MalformedSession.selector, 58, "paymasters cut short"), "reason");
    }

    function _expectMalformed(Session memory bad, string memory reason) internal {
        vm.expectRevert();
        validator.checkSessionEncoding(bad.encode());
        (bool ok, bytes memory ret) = address(validator).call(abi.encodeCall(validator.checkSessionEncoding, (bad.encode())));
        assertTrue(!ok, "refused");
        (, string memory got) = abi.decode(_stripSelector(ret), (uint256, string));
        assertEq(keccak256(bytes(got)), keccak256(bytes(reason)), reason);
        assertEq(bytes4(ret), SessionLib.MalformedSession.selector, "MalformedSession");
        // And through the EntryPoint, in the enable form, with the same error.
        submitExpectingRevert(enableOp(bad, mintCall(address(account), 1), 0), ret);
    }

    function _stripSelector(bytes memory ret) internal pure returns (bytes memory out) {
        out = new bytes(ret.length - 4);
        for (uint256 i = 0; i < out.length; ++i) {
            out[i] = ret[i + 4];
        }
    }

    function test_trailingBytesAfterSession_refused() public {
        bytes memory packed = abi.encodePacked(s.encode(), uint8(0));
        vm.expectRevert(abi.encodeWithSelector(SessionLib.MalformedSession.selector, packed.length - 1, "trailing bytes"));
        validator.checkSessionEncoding(packed);
    }
}

import {Permission as Permission_} from "./utils/Sessions.sol";
