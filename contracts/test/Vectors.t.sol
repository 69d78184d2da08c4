// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session, Sessions, Permission} from "./utils/Sessions.sol";
import {ValetNFT} from "../src/demo/ValetNFT.sol";
import {ValetDAO} from "../src/demo/ValetDAO.sol";

/// @notice Test vectors shared with the Rust side (`test/vectors/sessions.json`): packed session,
///         session id, grant digest and what the session key signs, for sessions using every
///         rule op and limit kind. This test checks the deployed validator against the committed
///         file; `make vectors` rewrites it (then commit it: the Rust tests check valet-core
///         against the same file).
contract VectorsTest is ValetTestBase {
    using Sessions for Session;

    string internal constant PATH = "test/vectors/sessions.json";
    bytes32 internal constant USER_OP_HASH = keccak256("valet test vector userOpHash");
    uint256 internal constant VECTOR_KEY = 0x5E551;

    function _sessions() internal view returns (string[] memory names, Session[] memory list, bytes[] memory indices, uint48[] memory times) {
        names = new string[](5);
        list = new Session[](5);
        indices = new bytes[](5);
        times = new uint48[](5);

        names[0] = "mint";
        list[0] = mintSession();
        indices[0] = hex"00";

        names[1] = "recurring_payment";
        list[1] = _payment();
        indices[1] = hex"00";
        times[1] = T0 + 1 days + 5;

        names[2] = "dao_votes";
        list[2] = _votes();
        indices[2] = hex"0000";

        names[3] = "every_op_and_native";
        list[3] = _everyOp();
        indices[3] = hex"0100";

        names[4] = "sponsored_with_fee_limits";
        list[4] = _sponsored();
        indices[4] = hex"00";
        times[4] = T0 + 3 hours;
    }

    function _payment() internal view returns (Session memory pay) {
        pay = Sessions.session(vm.addr(VECTOR_KEY), T0, T0 + 30 days);
        pay.salt = 7;
        pay.feeBudget = 0.05 ether;
        pay = pay.withPermission(
            Sessions.withRule(Sessions.permission(address(token), IERC20.transfer.selector), Sessions.rule(0, Sessions.EQ, uint256(uint160(address(0xFEE)))))
        );
        pay = pay.withLimit(Sessions.ERC20, address(token), 10 ether, 1 days);
        pay = pay.withLimit(Sessions.ERC20, address(token), 100 ether, 0);
    }

    function _votes() internal view returns (Session memory vote) {
        vote = Sessions.session(vm.addr(VECTOR_KEY), T0, T0 + 7 days);
        vote.maxUses = 3;
        uint256[] memory proposals = new uint256[](3);
        (proposals[0], proposals[1], proposals[2]) = (1, 2, 3);
        Permission memory p = Sessions.permission(address(dao), ValetDAO.castVote.selector);
        p = Sessions.withRule(p, Sessions.oneOf(0, proposals));
        p = Sessions.withRule(p, Sessions.range(1, 0, 2));
        vote = vote.withPermission(p);
    }

    function _everyOp() internal view returns (Session memory all) {
        all = Sessions.session(vm.addr(VECTOR_KEY), 1, type(uint48).max);
        all.epoch = 0x0123456789abcdef;
        all.salt = type(uint32).max;
        all.feeBudget = type(uint80).max;
        Permission memory q = Sessions.permission(address(0xFEE), bytes4(0));
        q.valueLimit = 1 ether;
        q.maxUses = type(uint16).max;
        all = all.withPermission(q);
        Permission memory r = Sessions.permission(address(0xBEEF), bytes4(0x12345678));
        r = Sessions.withRule(r, Sessions.rule(0, Sessions.NE, 1));
        r = Sessions.withRule(r, Sessions.rule(1, Sessions.GT, 2));
        r = Sessions.withRule(r, Sessions.rule(2, Sessions.GTE, 3));
        r = Sessions.withRule(r, Sessions.rule(3, Sessions.LT, type(uint256).max));
        r = Sessions.withRule(r, Sessions.self(4));
        all = all.withPermission(r);
        all = all.withLimit(Sessions.NATIVE, address(0), 5 ether, 0);
    }

    function _sponsored() internal view returns (Session memory s) {
        s = Sessions.session(vm.addr(VECTOR_KEY), T0, T0 + 1 days);
        s.feeBudget = 0;
        s = s.withPaymaster(address(0x9A7));
        s = s.withPaymaster(address(0x9A8));
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(nft), ValetNFT.mint.selector), Sessions.self(0)));
        s = s.withLimit(Sessions.FEES, address(0), 0.001 ether, 1 hours);
    }

    /// @dev A fixed operation with every field set, deploying an account through a paymaster-less
    ///      initCode, and its hash as EntryPoint v0.7 computes it.
    function _userOp() internal view returns (PackedUserOperation memory op) {
        op.sender = factory.getAddress(owner, 77);
        op.nonce = (uint256(sessionNonceKey(0x01020304)) << 64) | 5;
        op.initCode = abi.encodePacked(address(factory), abi.encodeCall(factory.createAccount, (owner, 77)));
        op.callData = mintCall(op.sender, 2);
        op.accountGasLimits = bytes32((uint256(500_000) << 128) | 300_000);
        op.preVerificationGas = 50_000;
        op.gasFees = bytes32((uint256(1 gwei) << 128) | 3 gwei);
        op.paymasterAndData = abi.encodePacked(address(0xDEAD), uint128(70_000), uint128(20_000), hex"c0ffee");
        op.signature = hex"1234";
    }

    function _userOpVector() internal view returns (string memory) {
        PackedUserOperation memory op = _userOp();
        return string.concat(
            "{\n",
            '    "sender": "', vm.toString(op.sender), '",\n',
            '    "nonce": "', vm.toString(bytes32(op.nonce)), '",\n',
            '    "init_code": "', vm.toString(op.initCode), '",\n',
            '    "call_data": "', vm.toString(op.callData), '",\n',
            '    "account_gas_limits": "', vm.toString(op.accountGasLimits), '",\n',
            '    "pre_verification_gas": ', vm.toString(op.preVerificationGas), ",\n",
            '    "gas_fees": "', vm.toString(op.gasFees), '",\n',
            '    "paymaster_and_data": "', vm.toString(op.paymasterAndData), '",\n',
            '    "signature": "', vm.toString(op.signature), '",\n',
            '    "hash": "', vm.toString(entryPoint.getUserOpHash(op)), '"\n',
            "  }"
        );
    }

    function test_vectors_matchTheValidator() public {
        if (vm.envOr("VALET_WRITE_VECTORS", false)) writeVectors();
        string memory json = vm.readFile(PATH);
        assertEq(vm.parseJsonAddress(json, ".validator"), address(validator), "validator address (regenerate the vectors)");
        assertEq(vm.parseJsonAddress(json, ".account"), address(account), "account address");
        assertEq(vm.parseJsonUint(json, ".chain_id"), block.chainid, "chain id");
        assertEq(vm.parseJsonBytes32(json, ".user_op_hash"), USER_OP_HASH, "userOpHash");
        assertEq(vm.parseJsonBytes32(json, ".user_operation.hash"), entryPoint.getUserOpHash(_userOp()), "EntryPoint hash");
        assertEq(vm.parseJsonBytes(json, ".user_operation.call_data"), _userOp().callData, "operation call data");
        (string[] memory names, Session[] memory list, bytes[] memory indices, uint48[] memory times) = _sessions();
        for (uint256 i = 0; i < names.length; ++i) {
            string memory at = string.concat(".sessions.", names[i]);
            bytes memory packed = vm.parseJsonBytes(json, string.concat(at, ".packed"));
            assertEq(packed, list[i].encode(), string.concat(names[i], ": packed"));
            validator.checkSessionEncoding(packed);
            assertEq(vm.parseJsonBytes32(json, string.concat(at, ".id")), validator.sessionId(packed), string.concat(names[i], ": id"));
            assertEq(
                vm.parseJsonBytes32(json, string.concat(at, ".grant_digest")),
                validator.grantDigest(address(account), packed),
                string.concat(names[i], ": grant digest")
            );
            // The key digest in the file is what the validator verifies: sign it, validate.
            bytes memory prefix = usePrefix(packed, times[i], indices[i]);
            bytes32 keyDigest_ = vm.parseJsonBytes32(json, string.concat(at, ".key_digest"));
            assertEq(keyDigest_, keyDigest(USER_OP_HASH, prefix), string.concat(names[i], ": key digest"));
            assertEq(vm.parseJsonBytes(json, string.concat(at, ".use_signature_prefix")), prefix, string.concat(names[i], ": prefix"));
        }
    }

    /// @dev The validator accepts the vector's key digest as what the session key signs.
    function test_vectors_keyDigestIsWhatTheValidatorVerifies() public {
        Session memory s = mintSession();
        enableByOwner(s);
        PackedUserOperation memory op = newOp(address(account), sessionNonceKey(1), mintCall(address(account), 1));
        bytes memory prefix = usePrefix(s, 0, hex"00");
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(USER_OP_HASH, prefix)));
        vm.prank(address(account));
        assertEq(validator.validateUserOp(op, USER_OP_HASH) & 1, 0, "signature accepted");
    }

    /// @dev Rewrites the vectors file (`make vectors` sets VALET_WRITE_VECTORS for the test above).
    function writeVectors() internal {
        (string[] memory names, Session[] memory list, bytes[] memory indices, uint48[] memory times) = _sessions();
        string memory body = "";
        for (uint256 i = 0; i < names.length; ++i) {
            bytes memory packed = list[i].encode();
            bytes memory prefix = usePrefix(packed, times[i], indices[i]);
            body = string.concat(
                body,
                i == 0 ? "" : ",\n",
                '    "', names[i], '": {\n',
                '      "packed": "', vm.toString(packed), '",\n',
                '      "id": "', vm.toString(keccak256(packed)), '",\n',
                '      "grant_digest": "', vm.toString(validator.grantDigest(address(account), packed)), '",\n',
                '      "claimed_time": ', vm.toString(uint256(times[i])), ',\n',
                '      "indices": "', vm.toString(indices[i]), '",\n',
                '      "use_signature_prefix": "', vm.toString(prefix), '",\n',
                '      "key_digest": "', vm.toString(keyDigest(USER_OP_HASH, prefix)), '"\n',
                "    }"
            );
        }
        string memory json = string.concat(
            "{\n",
            '  "chain_id": ', vm.toString(block.chainid), ",\n",
            '  "validator": "', vm.toString(address(validator)), '",\n',
            '  "account": "', vm.toString(address(account)), '",\n',
            '  "session_key_private_key": "', vm.toString(bytes32(VECTOR_KEY)), '",\n',
            '  "user_op_hash": "', vm.toString(USER_OP_HASH), '",\n',
            '  "user_operation": ', _userOpVector(), ",\n",
            '  "sessions": {\n', body, "\n  }\n}\n"
        );
        vm.writeFile(PATH, json);
    }
}
