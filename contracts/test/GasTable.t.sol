// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {ValetTestBase, IEntryPointV07} from "./utils/ValetTestBase.sol";
import {Session, Sessions} from "./utils/Sessions.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {TestPaymaster} from "./mocks/TestPaymaster.sol";
import {GasTable7702} from "./GasTable7702.sol";

/// @notice The headline gas table (`make gas`): owner and session operations side by side, one
///         operation per `handleOps`, same account, every nonce lane already used once. Session
///         operations pay their fees from the session's fee budget (counted in the session's
///         state word), except in the sponsored row, where a paymaster pays for both the owner's
///         and the session's operation and the session has no fee budget. Run with
///         `--isolate` so each `handleOps` is its own transaction (cold/warm access as on chain).
///         Headline figures are the execution gas of the `handleOps` call (what forge gas
///         snapshots and the published account benchmarks report); `*_tx` figures are the whole
///         transaction as its receipt shows it (21,000 + calldata + execution), and the calldata
///         itself is reported in bytes. The `eip7702_*` rows measure the same owner and session
///         mints on an EOA delegated to `ValetAccount7702` (EntryPoint v0.8), the same way, after
///         everything above (see {GasTable7702}); their targets are reported by
///         tools/gas-table.js, not asserted here.
contract GasTable is GasTable7702 {
    using Sessions for Session;

    address internal constant PAYEE = address(0xFEE);

    function test_gasTable() public {
        // Warm the owner lane, the payee's token balance and the session lanes once.
        submit(ownerOp(address(account), mintCall(address(account), 1)));
        submit(ownerOp(address(account), _transfer(1 ether)));

        (uint256 ownerMintTx, uint256 ownerMint) = _measure(ownerOp(address(account), mintCall(address(account), 1)));
        (uint256 ownerTransferTx, uint256 ownerTransfer) = _measure(ownerOp(address(account), _transfer(1 ether)));

        Session memory mint = mintSession();
        submit(enableOp(mint, mintCall(address(account), 1), 0));
        PackedUserOperation memory sessionMintOp = useOp(mint, mintCall(address(account), 1), 0);
        (uint256 sessionMintTx, uint256 sessionMint) = _measure(sessionMintOp);

        // Enable-in-first-use on a lane used once before (by another session).
        Session memory other = mintSession();
        other.salt = 1;
        submit(sessionOp(address(account), 2, mintCall(address(account), 1), enablePrefix(other, 0, hex"00", grant(other, address(account))), SESSION_KEY));
        Session memory fresh = mintSession();
        fresh.salt = 2;
        PackedUserOperation memory enableMintOp = sessionOp(
            address(account), 2, mintCall(address(account), 1), enablePrefix(fresh, 0, hex"00", grant(fresh, address(account))), SESSION_KEY
        );
        (uint256 enableAndMintTx, uint256 enableAndMint) = _measure(enableMintOp);

        Session memory pay = Sessions.session(sessionSigner, T0, T0 + 30 days);
        pay = pay.withPermission(
            Sessions.withRule(
                Sessions.permission(address(token), IERC20.transfer.selector),
                Sessions.rule(0, Sessions.EQ, uint256(uint160(PAYEE)))
            )
        );
        pay = pay.withLimit(1, address(token), 100 ether, 0);
        submit(sessionOp(address(account), 3, _transfer(1 ether), enablePrefix(pay, 0, hex"00", grant(pay, address(account))), SESSION_KEY));
        (uint256 sessionTransferTx, uint256 sessionTransfer) =
            _measure(sessionOp(address(account), 3, _transfer(1 ether), usePrefix(pay, 0, hex"00"), SESSION_KEY));

        // Sponsored: the same transfer, owner and session, both paid by a paymaster; the session
        // has no fee budget, so no fee accounting happens.
        TestPaymaster paymaster = new TestPaymaster(address(entryPoint));
        paymaster.deposit{value: 10 ether}();
        Session memory sponsoredPay = pay;
        sponsoredPay.feeBudget = 0;
        sponsoredPay.salt = 4;
        submit(_sponsored(ownerOp(address(account), _transfer(1 ether)), paymaster, 0, ""));
        submit(_sponsored(_sessionOp(4, _transfer(1 ether)), paymaster, SESSION_KEY, enablePrefix(sponsoredPay, 0, hex"00", grant(sponsoredPay, address(account)))));
        (uint256 ownerSponsoredTx, uint256 ownerSponsored) =
            _measure(_sponsored(ownerOp(address(account), _transfer(1 ether)), paymaster, 0, ""));
        (uint256 sessionSponsoredTx, uint256 sessionSponsored) = _measure(
            _sponsored(_sessionOp(4, _transfer(1 ether)), paymaster, SESSION_KEY, usePrefix(sponsoredPay, 0, hex"00"))
        );

        // Revoke-all is one write whatever the number of sessions: measured with the sessions
        // above enabled, and again with 20 more.
        bytes memory revokeAll = single(address(validator), 0, abi.encodeCall(validator.revokeAllSessions, ()));
        (, uint256 revokeAllFew) = _measure(ownerOp(address(account), revokeAll));
        for (uint32 i = 0; i < 20; ++i) {
            Session memory more = mintSession();
            more.epoch = validator.accountEpoch(address(account));
            more.salt = 100 + i;
            enableByOwner(more);
        }
        (, uint256 revokeAllMany) = _measure(ownerOp(address(account), revokeAll));

        PackedUserOperation memory ownerMintOp = ownerOp(address(account), mintCall(address(account), 1));
        Gas7702 memory eip7702 = measure7702();
        string memory j = "gas";
        vm.serializeUint(j, "owner_mint", ownerMint);
        vm.serializeUint(j, "session_mint", sessionMint);
        vm.serializeUint(j, "session_mint_overhead", sessionMint - ownerMint);
        vm.serializeUint(j, "session_enable_and_mint", enableAndMint);
        vm.serializeUint(j, "enable_overhead", enableAndMint - sessionMint);
        vm.serializeUint(j, "owner_erc20_transfer", ownerTransfer);
        vm.serializeUint(j, "session_erc20_transfer", sessionTransfer);
        vm.serializeUint(j, "owner_mint_tx", ownerMintTx);
        vm.serializeUint(j, "session_mint_tx", sessionMintTx);
        vm.serializeUint(j, "session_mint_overhead_tx", sessionMintTx - ownerMintTx);
        vm.serializeUint(j, "session_enable_and_mint_tx", enableAndMintTx);
        vm.serializeUint(j, "enable_overhead_tx", enableAndMintTx - sessionMintTx);
        vm.serializeUint(j, "owner_erc20_transfer_tx", ownerTransferTx);
        vm.serializeUint(j, "session_erc20_transfer_tx", sessionTransferTx);
        vm.serializeUint(j, "owner_revoke_all", revokeAllFew);
        vm.serializeUint(j, "owner_revoke_all_after_20_more_sessions", revokeAllMany);
        vm.serializeUint(j, "owner_sponsored_erc20_transfer", ownerSponsored);
        vm.serializeUint(j, "session_sponsored_erc20_transfer", sessionSponsored);
        vm.serializeUint(j, "owner_sponsored_erc20_transfer_tx", ownerSponsoredTx);
        vm.serializeUint(j, "session_sponsored_erc20_transfer_tx", sessionSponsoredTx);
        vm.serializeUint(j, "owner_calldata_bytes", _calldataBytes(ownerMintOp));
        vm.serializeUint(j, "session_calldata_bytes", _calldataBytes(sessionMintOp));
        vm.serializeUint(j, "owner_signature_bytes", ownerMintOp.signature.length);
        vm.serializeUint(j, "session_enable_signature_bytes", enableMintOp.signature.length);
        serialize7702(j, eip7702);
        string memory json = vm.serializeUint(j, "session_signature_bytes", sessionMintOp.signature.length);
        vm.writeJson(json, vm.envOr("VALET_GAS_OUT", string("../target/gas.json")));

        assertLe(sessionMint - ownerMint, 12_000, "session_mint_overhead target");
        assertLe(enableAndMint - sessionMint, 60_000, "enable_overhead target");
        assertLe(sessionMintOp.signature.length, 304, "session signature target");
        assertEq(revokeAllMany, revokeAllFew, "revoke-all costs the same whatever the number of sessions");
    }

    function _sessionOp(uint32 lane, bytes memory callData) internal view returns (PackedUserOperation memory op) {
        op = newOp(address(account), sessionNonceKey(lane), callData);
    }

    /// @dev `op` through `paymaster`, signed by the owner (`key` 0) or the session key after `prefix`.
    function _sponsored(PackedUserOperation memory op, TestPaymaster paymaster, uint256 key, bytes memory prefix)
        internal
        view
        returns (PackedUserOperation memory)
    {
        op.paymasterAndData = abi.encodePacked(address(paymaster), uint128(100_000), uint128(0));
        if (key == 0) {
            op.signature = sign65(OWNER_KEY, signedHash(op));
        } else {
            op.signature = abi.encodePacked(prefix, sign65(key, keyDigest(entryPoint.getUserOpHash(op), prefix)));
        }
        return op;
    }

    function _calldataBytes(PackedUserOperation memory op) internal view returns (uint256) {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        return abi.encodeCall(IEntryPointV07.handleOps, (ops, bundler)).length;
    }

    function _transfer(uint256 amount) internal view returns (bytes memory) {
        return single(address(token), 0, abi.encodeCall(IERC20.transfer, (PAYEE, amount)));
    }

    /// @dev Gas of the `handleOps` transaction carrying `op` alone, as its receipt would show
    ///      (under `--isolate` forge runs the call as a transaction: 21,000 + calldata + execution),
    ///      and of its execution alone (that minus 21,000 and the calldata's 4/16 gas per byte).
    function _measure(PackedUserOperation memory op) internal returns (uint256 total, uint256 execution) {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        bytes memory txData = abi.encodeCall(IEntryPointV07.handleOps, (ops, bundler));
        vm.prank(bundler, bundler);
        entryPoint.handleOps(ops, bundler);
        total = vm.lastCallGas().gasTotalUsed;
        uint256 tokens;
        for (uint256 i = 0; i < txData.length; ++i) {
            tokens += txData[i] == 0 ? 1 : 4;
        }
        // The EIP-7623 floor (10 gas per token) must not be what was charged, or the split is unknown.
        assertTrue(total > 21_000 + 10 * tokens, "calldata floor applies: execution not measurable");
        execution = total - 21_000 - 4 * tokens;
    }
}
