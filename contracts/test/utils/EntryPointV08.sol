// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC7579Execution} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {Test} from "./Test.sol";

/// @notice EntryPoint v0.8, as much of it as the tests call.
interface IEntryPointV08 {
    error FailedOp(uint256 opIndex, string reason);
    error FailedOpWithRevert(uint256 opIndex, string reason, bytes inner);

    event UserOperationEvent(
        bytes32 indexed userOpHash,
        address indexed sender,
        address indexed paymaster,
        uint256 nonce,
        bool success,
        uint256 actualGasCost,
        uint256 actualGasUsed
    );

    function handleOps(PackedUserOperation[] calldata ops, address payable beneficiary) external;
    function getUserOpHash(PackedUserOperation calldata userOp) external view returns (bytes32);
    function getNonce(address sender, uint192 key) external view returns (uint256);
    function depositTo(address account) external payable;
    function balanceOf(address account) external view returns (uint256);
    function senderCreator() external view returns (address);
    function getDomainSeparatorV4() external view returns (bytes32);
    function getPackedUserOpTypeHash() external pure returns (bytes32);
}

/// @notice Deploys the real EntryPoint v0.8 (its npm artifact through the deterministic deployer,
///         at its canonical address) and builds, hashes, signs and submits v0.8 UserOperations,
///         EIP-7702 senders included. The userOpHash is computed here from the spec, independently
///         of the EntryPoint, because a 7702 operation must be signed before its sender's
///         delegation is on chain (the EntryPoint's own `getUserOpHash` reads the sender's code).
abstract contract EntryPointV08Base is Test {
    address internal constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;
    bytes internal constant CREATE2_DEPLOYER_CODE =
        hex"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";
    /// @dev The salt eth-infinitism deploys EntryPoint v0.8 with; checked by the address it gives.
    bytes32 internal constant ENTRYPOINT_V08_SALT = 0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9;
    IEntryPointV08 internal constant entryPointV08 = IEntryPointV08(0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108);

    /// @dev `initCode` of an EIP-7702 sender: the marker 0x7702 padded to 20 bytes.
    bytes20 internal constant EIP7702_MARKER = bytes20(bytes2(0x7702));

    bytes32 internal constant PACKED_USEROP_TYPEHASH = keccak256(
        "PackedUserOperation(address sender,uint256 nonce,bytes initCode,bytes callData,bytes32 accountGasLimits,uint256 preVerificationGas,bytes32 gasFees,bytes paymasterAndData)"
    );

    address payable internal bundler = payable(address(0xB0B));

    function deployEntryPointV08() internal {
        if (address(entryPointV08).code.length != 0) return;
        if (CREATE2_DEPLOYER.code.length == 0) vm.etch(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
        string memory json =
            vm.readFile("../tools/node_modules/@account-abstraction/contracts-v08/artifacts/EntryPoint.json");
        bytes memory initCode = vm.parseJsonBytes(json, ".bytecode");
        (bool ok, bytes memory ret) = CREATE2_DEPLOYER.call(abi.encodePacked(ENTRYPOINT_V08_SALT, initCode));
        require(ok && address(bytes20(ret)) == address(entryPointV08), "EntryPoint v0.8 not at its canonical address");
    }

    // ------------------------------------------------------------ EIP-7702

    /// @dev The code EIP-7702 gives a delegating EOA.
    function designator(address implementation) internal pure returns (bytes memory) {
        return abi.encodePacked(hex"ef0100", implementation);
    }

    /// @dev `initCode` that marks `sender` as an EIP-7702 account and has the EntryPoint's
    ///      SenderCreator call it with `initCall` before validation (none if empty).
    function eip7702InitCode(bytes memory initCall) internal pure returns (bytes memory) {
        return abi.encodePacked(EIP7702_MARKER, initCall);
    }

    // ------------------------------------------------------------ operations

    function executeSingle(address target, uint256 value, bytes memory data) internal pure returns (bytes memory) {
        return abi.encodeCall(IERC7579Execution.execute, (bytes32(0), abi.encodePacked(target, value, data)));
    }

    function newOpV08(address sender, uint192 key, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op.sender = sender;
        op.nonce = entryPointV08.getNonce(sender, key);
        op.callData = callData;
        op.accountGasLimits = bytes32((uint256(1_000_000) << 128) | 1_000_000);
        op.preVerificationGas = 60_000;
        op.gasFees = bytes32((uint256(1 gwei) << 128) | 2 gwei);
    }

    /// @dev EntryPoint v0.8's userOpHash, from the spec: the EIP-712 digest (domain "ERC4337",
    ///      version "1", this chain, the EntryPoint) of the PackedUserOperation struct, where an
    ///      EIP-7702 initCode (0x7702 padded to 20 bytes, then optional calldata) is hashed as
    ///      `delegate ‖ calldata` — `delegate` being the implementation the sender's designator
    ///      names (or will name, once the authorization lands).
    function userOpHashV08(PackedUserOperation memory op, address delegate) internal view returns (bytes32) {
        bytes memory initCode = op.initCode;
        bytes32 initCodeHash = keccak256(initCode);
        if (initCode.length >= 20 && bytes20(_first20(initCode)) == EIP7702_MARKER) {
            bytes memory rest = new bytes(initCode.length - 20);
            for (uint256 i = 0; i < rest.length; ++i) {
                rest[i] = initCode[20 + i];
            }
            initCodeHash = keccak256(abi.encodePacked(delegate, rest));
        }
        bytes32 structHash = keccak256(
            abi.encode(
                PACKED_USEROP_TYPEHASH,
                op.sender,
                op.nonce,
                initCodeHash,
                keccak256(op.callData),
                op.accountGasLimits,
                op.preVerificationGas,
                op.gasFees,
                keccak256(op.paymasterAndData)
            )
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("ERC4337"),
                keccak256("1"),
                block.chainid,
                address(entryPointV08)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _first20(bytes memory b) private pure returns (bytes32 word) {
        assembly ("memory-safe") {
            word := and(mload(add(b, 0x20)), not(0xffffffffffffffffffffffff))
        }
    }

    function sign65(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    // ------------------------------------------------------------ session signatures

    /// @dev The use-mode signature prefix (everything before the session key's 65 bytes).
    function usePrefixV08(bytes memory packed, uint48 claimedTime, bytes memory indices)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(uint8(0), uint16(packed.length), packed, claimedTime, uint8(indices.length), indices);
    }

    /// @dev The enable-and-use signature prefix, the owner's grant signature included.
    function enablePrefixV08(bytes memory packed, uint48 claimedTime, bytes memory indices, bytes memory grantSig)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(
            uint8(1),
            uint16(packed.length),
            packed,
            claimedTime,
            uint8(indices.length),
            indices,
            uint16(grantSig.length),
            grantSig
        );
    }

    /// @dev What the session key signs (layout in the SessionKeyValidator notes):
    ///      keccak256(userOpHash ‖ sessionId ‖ claimedTime ‖ call count ‖ indices), for a
    ///      signature prefix built from `packed` with `claimedTime` and `indices`.
    function keyDigestV08(bytes32 userOpHash, bytes memory packed, uint48 claimedTime, bytes memory indices)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(userOpHash, keccak256(packed), claimedTime, uint8(indices.length), indices));
    }

    // ------------------------------------------------------------ submission

    function submitV08(PackedUserOperation memory op) internal {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        submitV08(ops);
    }

    function submitV08(PackedUserOperation[] memory ops) internal {
        vm.prank(bundler, bundler);
        entryPointV08.handleOps(ops, bundler);
    }

    /// @dev Expects `handleOps` to refuse op 0 in account validation with the revert `inner`.
    function submitV08ExpectingRevert(PackedUserOperation memory op, bytes memory inner) internal {
        vm.expectRevert(abi.encodeWithSelector(IEntryPointV08.FailedOpWithRevert.selector, 0, "AA23 reverted", inner));
        submitV08(op);
    }

    function submitV08ExpectingFailedOp(PackedUserOperation memory op, string memory reason) internal {
        vm.expectRevert(abi.encodeWithSelector(IEntryPointV08.FailedOp.selector, 0, reason));
        submitV08(op);
    }
}
