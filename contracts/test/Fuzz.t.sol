// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC7579Execution} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session, Sessions, Rule, Permission} from "./utils/Sessions.sol";
import {Recorder} from "./mocks/Recorder.sol";
import {ValidatorDecoder, AccountDecoder, Decoded} from "./mocks/ExecutionHarness.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";

/// @notice Fuzz tests of the rule engine (through the EntryPoint), of the execution decoder
///         (against the account's own decoding) and of the session encoding.
contract FuzzTest is ValetTestBase {
    using Sessions for Session;

    Recorder internal rec;
    ValidatorDecoder internal ours;
    AccountDecoder internal theirs;

    function setUp() public override {
        super.setUp();
        rec = new Recorder();
        ours = new ValidatorDecoder();
        theirs = new AccountDecoder();
    }

    // ------------------------------------------------------------------ rule engine

    /// @dev The reference model of a rule, written from the op table.
    function model(uint8 op, uint256 x, bytes32[] memory v) internal view returns (bool) {
        if (op == 0) return x == uint256(v[0]);
        if (op == 1) return x != uint256(v[0]);
        if (op == 2) return x > uint256(v[0]);
        if (op == 3) return x >= uint256(v[0]);
        if (op == 4) return x < uint256(v[0]);
        if (op == 5) return x <= uint256(v[0]);
        if (op == 6) return uint256(v[0]) <= x && x <= uint256(v[1]);
        if (op == 8) return x == uint256(uint160(address(account)));
        for (uint256 i = 0; i < v.length; ++i) {
            if (x == uint256(v[i])) return true;
        }
        return false;
    }

    function testFuzz_rule_agreesWithModel(uint8 opSeed, uint256 a, uint256 b, uint256 xSeed, uint8 nSeed) public {
        uint8 op = uint8(bound(opSeed, 0, 8));
        Rule memory r;
        r.arg = 1;
        r.op = op;
        if (op == 6) {
            (uint256 lo, uint256 hi) = a <= b ? (a, b) : (b, a);
            r.values = new bytes32[](2);
            (r.values[0], r.values[1]) = (bytes32(lo), bytes32(hi));
        } else if (op == 7) {
            uint256 n = bound(nSeed, 1, 16);
            r.values = new bytes32[](n);
            for (uint256 i = 0; i < n; ++i) {
                r.values[i] = bytes32(uint256(keccak256(abi.encode(a, i))) % 64);
            }
        } else if (op == 8) {
            r.values = new bytes32[](0);
        } else {
            r.values = new bytes32[](1);
            r.values[0] = bytes32(a);
        }
        // x lands on, beside or far from the reference values, so every edge is hit.
        uint256 x;
        uint256 pick = xSeed % 6;
        if (op == 8) x = pick < 3 ? uint256(uint160(address(account))) : xSeed;
        else if (op == 7) x = xSeed % 64;
        else if (pick == 0) x = a;
        else if (pick == 1) x = a == type(uint256).max ? a : a + 1;
        else if (pick == 2) x = a == 0 ? 0 : a - 1;
        else if (pick == 3) x = b;
        else x = xSeed;

        Session memory s = Sessions.session(sessionSigner, T0, T0 + 3600);
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(rec), Recorder.record.selector), r));
        bytes memory callData = single(address(rec), 0, abi.encodeCall(Recorder.record, (0, x, 0)));
        if (model(op, x, r.values)) {
            submit(enableOp(s, callData, 0));
            assertEq(rec.b(), x, "accepted and executed");
        } else {
            submitExpectingRevert(
                enableOp(s, callData, 0), abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, 0, 0, 0, 1, x)
            );
        }
    }

    // ------------------------------------------------------------------ execution decoding

    function _calls(uint256 seed, uint256 n) internal pure returns (Call[] memory calls) {
        calls = new Call[](n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 h = uint256(keccak256(abi.encode(seed, i)));
            bytes memory data = new bytes(h % 100);
            for (uint256 j = 0; j < data.length; ++j) {
                data[j] = bytes1(uint8(h >> (j % 32)));
            }
            calls[i] = Call(address(uint160(h)), h >> 200, data);
        }
    }

    /// @dev Whenever the validator's decoder accepts operation calldata — canonical or mutated —
    ///      the account's own decoding of the same bytes yields exactly the same calls.
    /// forge-config: default.fuzz.runs = 2048
    function testFuzz_executionDecoding_neverDisagreesWithTheAccount(
        uint256 seed,
        bool isBatch,
        uint8 nSeed,
        uint16 mutateAt,
        uint8 mutateTo,
        bool mutate
    ) public view {
        bytes memory callData;
        if (isBatch) {
            callData = batch(_calls(seed, bound(nSeed, 1, 4)));
        } else {
            Call[] memory one = _calls(seed, 1);
            callData = single(one[0].target, one[0].value, one[0].callData);
        }
        if (mutate && callData.length > 0) callData[mutateAt % callData.length] = bytes1(mutateTo);

        (bool accepted, bytes memory got) = address(ours).staticcall(abi.encodeCall(ValidatorDecoder.decode, (callData)));
        if (!mutate) assertTrue(accepted, "canonical encodings are accepted");
        if (!accepted) return;
        (bool executes, bytes memory ran) = address(theirs).staticcall(callData);
        assertTrue(executes, "what the validator accepts, the account decodes");
        Decoded[] memory a = abi.decode(got, (Decoded[]));
        Decoded[] memory b = abi.decode(ran, (Decoded[]));
        assertEq(a.length, b.length, "same number of calls");
        for (uint256 i = 0; i < a.length; ++i) {
            assertEq(a[i].target, b[i].target, "same target");
            assertEq(a[i].value, b[i].value, "same value");
            assertEq(a[i].data, b[i].data, "same calldata");
        }
    }

    // ------------------------------------------------------------------ session encoding

    function _randomSession(uint256 seed) internal pure returns (Session memory s) {
        uint48 start = 1 + uint48(seed % 1e9);
        s = Sessions.session(vm.addr(1 + seed % 1000), start, start + 1 + uint48(seed % 1e6));
        s.epoch = uint64(seed >> 20);
        s.salt = uint32(seed >> 52);
        s.maxUses = uint24(seed >> 84);
        s.feeBudget = uint80(seed >> 36);
        uint256 paymasters = (seed >> 200) % 3;
        for (uint256 i = 0; i < paymasters; ++i) {
            s = s.withPaymaster(address(uint160(uint256(keccak256(abi.encode(seed, "paymaster", i)))) | 1));
        }
        uint256 limits = (seed >> 108) % 4;
        for (uint256 l = 0; l < limits; ++l) {
            uint8 kind = uint8((seed >> (112 + 2 * l)) % 3);
            address token = kind == 1 ? address(uint160(uint256(keccak256(abi.encode(seed, l)))) | 1) : address(0);
            s = s.withLimit(kind, token, uint128(seed >> l), uint48(seed >> 120));
        }
        uint256 permissions = 1 + (seed >> 130) % 4;
        for (uint256 k = 0; k < permissions; ++k) {
            Permission memory p = Sessions.permission(address(uint160(seed >> k) | 1), bytes4(bytes32(seed << k)));
            p.valueLimit = uint128(seed >> (140 + k));
            p.maxUses = uint16(seed >> (150 + k));
            uint256 rules = (seed >> (160 + 2 * k)) % 4;
            for (uint256 i = 0; i < rules; ++i) {
                uint8 op = uint8((seed >> (170 + 3 * i + k)) % 9);
                Rule memory r;
                r.arg = uint8(seed >> (180 + i));
                r.op = op;
                uint256 n = op == 6 ? 2 : op == 7 ? 1 + (seed >> 190) % 3 : op == 8 ? 0 : 1;
                r.values = new bytes32[](n);
                for (uint256 j = 0; j < n; ++j) {
                    r.values[j] = bytes32(j);
                }
                p = Sessions.withRule(p, r);
            }
            s = s.withPermission(p);
        }
    }

    function testFuzz_sessionEncoding_roundTripsAndHashesLikeTheSpec(uint256 seed) public view {
        Session memory s = _randomSession(seed);
        bytes memory packed = s.encode();
        validator.checkSessionEncoding(packed);
        assertEq(validator.sessionId(packed), keccak256(packed), "id");
        assertEq(
            validator.grantDigest(address(account), packed),
            Sessions.grantDigest(s, address(account), address(validator), block.chainid),
            "digest"
        );
    }

    function testFuzz_sessionEncoding_truncatedOrExtendedIsRefused(uint256 seed, uint16 cut, bool extend) public {
        bytes memory packed = _randomSession(seed).encode();
        bytes memory changed;
        if (extend) {
            changed = abi.encodePacked(packed, bytes1(uint8(cut)));
        } else {
            uint256 len = bound(cut, 0, packed.length - 1);
            changed = new bytes(len);
            for (uint256 i = 0; i < len; ++i) {
                changed[i] = packed[i];
            }
        }
        vm.expectRevert();
        validator.checkSessionEncoding(changed);
    }
}
