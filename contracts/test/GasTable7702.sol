// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {IEntryPointV08} from "./utils/EntryPointV08.sol";
import {Session, Sessions} from "./utils/Sessions.sol";
import {ValetAccount7702} from "../src/ValetAccount7702.sol";

/// @notice The EIP-7702 rows of the gas table (`make gas`), measured inside {GasTable} so that one
///         test writes the whole of `gas.json`: an EOA delegated to {ValetAccount7702} on the real
///         EntryPoint v0.8, with the same method as the `ValetAccount` rows — one operation per
///         `handleOps`, each its own transaction under `--isolate`, every nonce lane used once
///         before, the same mint call on the same NFT and the same session (the demo's mint
///         session: 2 argument rules, a use count, a fee budget) through the same validator.
///         The EntryPoint v0.8 helpers are here rather than from `EntryPointV08Base`, whose
///         names clash with {ValetTestBase}'s.
abstract contract GasTable7702 is ValetTestBase {
    using Sessions for Session;

    uint256 internal constant EOA_7702_KEY = 0xA11CE7702;
    /// @dev The salt eth-infinitism deploys EntryPoint v0.8 with; checked by the address it gives.
    bytes32 internal constant ENTRYPOINT_V08_SALT_ = 0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9;
    IEntryPointV08 internal constant entryPointV08_ = IEntryPointV08(0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108);

    /// @dev Execution gas of `handleOps` and the whole transaction (`*Tx`), as in {GasTable}.
    struct Gas7702 {
        uint256 ownerMint;
        uint256 ownerMintTx;
        uint256 sessionMint;
        uint256 sessionMintTx;
        uint256 enableAndMint;
        uint256 enableAndMintTx;
    }

    /// @dev Deploys EntryPoint v0.8 and the 7702 implementation, delegates a fresh EOA to it and
    ///      measures the owner mint, the session mint and the enable-in-first-use + mint.
    function measure7702() internal returns (Gas7702 memory g) {
        // EntryPoint v0.8 treats validAfter as exclusive (v0.7: inclusive): the mint session,
        // valid from T0, is usable from T0 + 1.
        vm.warp(T0 + 1);
        _deployEntryPointV08();
        ValetAccount7702 implementation = new ValetAccount7702(address(validator));
        address eoa = vm.addr(EOA_7702_KEY);
        vm.deal(eoa, 100 ether);
        vm.label(eoa, "eoa7702");
        vm.etch(eoa, abi.encodePacked(hex"ef0100", address(implementation)));

        // The first operation activates (the 0x7702 initCode calling `activate`) and warms the
        // owner lane and the EOA's NFT balance.
        PackedUserOperation memory first = _newOp7702(eoa, 0, mintCall(eoa, 1));
        first.initCode = abi.encodePacked(bytes20(bytes2(0x7702)), abi.encodeCall(ValetAccount7702.activate, ()));
        first.signature = sign65(EOA_7702_KEY, entryPointV08_.getUserOpHash(first));
        _submit7702(first);
        require(validator.isInitialized(eoa), "7702 account not activated");

        (g.ownerMintTx, g.ownerMint) = _measure7702(_ownerOp7702(eoa, mintCall(eoa, 1)));

        Session memory mint = mintSession();
        mint.epoch = validator.accountEpoch(eoa);
        _submit7702(_sessionOp7702(eoa, 1, mint, mintCall(eoa, 1), true));
        (g.sessionMintTx, g.sessionMint) = _measure7702(_sessionOp7702(eoa, 1, mint, mintCall(eoa, 1), false));

        // Enable-in-first-use on a lane used once before (by another session).
        Session memory other = mintSession();
        other.epoch = mint.epoch;
        other.salt = 1;
        _submit7702(_sessionOp7702(eoa, 2, other, mintCall(eoa, 1), true));
        Session memory fresh = mintSession();
        fresh.epoch = mint.epoch;
        fresh.salt = 2;
        (g.enableAndMintTx, g.enableAndMint) = _measure7702(_sessionOp7702(eoa, 2, fresh, mintCall(eoa, 1), true));
    }

    /// @dev Writes `g` into the JSON object `j` as the `eip7702_*` keys.
    function serialize7702(string memory j, Gas7702 memory g) internal {
        vm.serializeUint(j, "eip7702_owner_mint", g.ownerMint);
        vm.serializeUint(j, "eip7702_session_mint", g.sessionMint);
        vm.serializeUint(j, "eip7702_session_mint_overhead", g.sessionMint - g.ownerMint);
        vm.serializeUint(j, "eip7702_session_enable_and_mint", g.enableAndMint);
        vm.serializeUint(j, "eip7702_enable_overhead", g.enableAndMint - g.sessionMint);
        vm.serializeUint(j, "eip7702_owner_mint_tx", g.ownerMintTx);
        vm.serializeUint(j, "eip7702_session_mint_tx", g.sessionMintTx);
        vm.serializeUint(j, "eip7702_session_mint_overhead_tx", g.sessionMintTx - g.ownerMintTx);
        vm.serializeUint(j, "eip7702_session_enable_and_mint_tx", g.enableAndMintTx);
        vm.serializeUint(j, "eip7702_enable_overhead_tx", g.enableAndMintTx - g.sessionMintTx);
    }

    function _deployEntryPointV08() private {
        if (address(entryPointV08_).code.length != 0) return;
        if (CREATE2_DEPLOYER.code.length == 0) vm.etch(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
        string memory json =
            vm.readFile("../tools/node_modules/@account-abstraction/contracts-v08/artifacts/EntryPoint.json");
        bytes memory initCode = vm.parseJsonBytes(json, ".bytecode");
        (bool ok, bytes memory ret) = CREATE2_DEPLOYER.call(abi.encodePacked(ENTRYPOINT_V08_SALT_, initCode));
        require(ok && address(bytes20(ret)) == address(entryPointV08_), "EntryPoint v0.8 not at its canonical address");
    }

    function _newOp7702(address sender, uint192 key, bytes memory callData)
        private
        view
        returns (PackedUserOperation memory op)
    {
        op.sender = sender;
        op.nonce = entryPointV08_.getNonce(sender, key);
        op.callData = callData;
        op.accountGasLimits = bytes32((uint256(1_000_000) << 128) | 1_000_000);
        op.preVerificationGas = 60_000;
        op.gasFees = bytes32((uint256(1 gwei) << 128) | 2 gwei);
    }

    /// @dev An owner operation: the EOA's key over v0.8's userOpHash as given (an EIP-712 digest).
    function _ownerOp7702(address eoa, bytes memory callData) private view returns (PackedUserOperation memory op) {
        op = _newOp7702(eoa, 0, callData);
        op.signature = sign65(EOA_7702_KEY, entryPointV08_.getUserOpHash(op));
    }

    /// @dev A session operation of `s` on `lane` whose single call uses permission 0: enable-and-use
    ///      with the EOA's grant if `enable`, else use.
    function _sessionOp7702(address eoa, uint32 lane, Session memory s, bytes memory callData, bool enable)
        private
        view
        returns (PackedUserOperation memory op)
    {
        op = _newOp7702(eoa, sessionNonceKey(lane), callData);
        bytes memory prefix = enable
            ? enablePrefix(s, 0, hex"00", sign65(EOA_7702_KEY, validator.grantDigest(eoa, s.encode())))
            : usePrefix(s, 0, hex"00");
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(entryPointV08_.getUserOpHash(op), prefix)));
    }

    function _submit7702(PackedUserOperation memory op) private {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        vm.prank(bundler, bundler);
        entryPointV08_.handleOps(ops, bundler);
    }

    /// @dev {GasTable-_measure} for EntryPoint v0.8 (whose `handleOps` has the same calldata).
    function _measure7702(PackedUserOperation memory op) private returns (uint256 total, uint256 execution) {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        bytes memory txData = abi.encodeCall(IEntryPointV08.handleOps, (ops, bundler));
        vm.prank(bundler, bundler);
        entryPointV08_.handleOps(ops, bundler);
        total = vm.lastCallGas().gasTotalUsed;
        uint256 tokens;
        for (uint256 i = 0; i < txData.length; ++i) {
            tokens += txData[i] == 0 ? 1 : 4;
        }
        assertTrue(total > 21_000 + 10 * tokens, "calldata floor applies: execution not measurable");
        execution = total - 21_000 - 4 * tokens;
    }
}
