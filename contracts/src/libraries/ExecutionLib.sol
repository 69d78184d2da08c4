// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ExecutionLib
/// @notice Reads the calls out of an ERC-7579 account's `execute(bytes32 mode, bytes executionCalldata)`
///         operation calldata, accepting only the canonical ABI encoding so that the calls checked
///         are exactly the calls the account will make.
/// @dev Accepted modes (the whole 32-byte word):
///      - `0x00…00`: single call, default exec type; executionCalldata = target (20) ‖ value (32) ‖ calldata.
///      - `0x01 00…00`: batch, default exec type; executionCalldata = `abi.encode(Execution[])` with
///        `Execution(address target, uint256 value, bytes callData)`.
///      Everything else (delegatecall 0xff, try exec type, mode selectors or payloads, other account
///      functions such as `executeFromExecutor` or `executeUserOp`) is refused.
///
///      Canonical means: the `bytes` argument's offset is 0x40 and it ends in the last 32-byte word
///      of the calldata (up to 31 bytes may follow it, as padding; nothing reads them); in a batch,
///      the array offset is 0x20, every element offset is the one a standard encoder writes
///      (elements back to back, in order), each element's `callData` offset is 0x60, addresses
///      have clean upper bits, and the elements end exactly where the bytes end. Padding bytes
///      are not checked: no decoder reads them. Every pointer the account's decoder follows is
///      thus the one checked here, so both see the same calls (fuzzed in test/Fuzz.t.sol).
library ExecutionLib {
    /// @dev `IERC7579Execution.execute(bytes32,bytes)`.
    bytes4 internal constant EXECUTE_SELECTOR = 0xe9ae5c53;
    bytes32 internal constant MODE_SINGLE = bytes32(0);
    bytes32 internal constant MODE_BATCH = bytes32(bytes1(0x01));
    /// @notice The most calls one batch may carry.
    uint256 internal constant MAX_BATCH_CALLS = 32;

    /// @notice The operation calls `selector` on the account; only `execute` is accepted.
    error UnsupportedAccountFunction(bytes4 selector);
    /// @notice The execution mode is not single or batch with the default exec type.
    error UnsupportedExecutionMode(bytes32 mode);
    /// @notice The calldata is not the canonical ABI encoding (at byte `offset` of `what`).
    error NonCanonicalExecution(string what, uint256 offset);

    /// @dev The 32 bytes of `b` at `o`; callers check `o + 32 <= b.length` first.
    function _word(bytes calldata b, uint256 o) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(add(b.offset, o))
        }
    }

    /// @notice Splits `execute` calldata into whether it is a batch and its executionCalldata.
    function executionOf(bytes calldata callData) internal pure returns (bool batch, bytes calldata exec) {
        uint256 size = callData.length;
        bytes4 selector;
        bytes32 mode;
        uint256 failure; // 1 short or wrong function, 2 mode, 3 offset, 4 length, 5 single too short
        exec = callData[0:0];
        assembly ("memory-safe") {
            selector := calldataload(callData.offset)
            mode := calldataload(add(callData.offset, 4))
            for {} 1 {} {
                if or(lt(size, 100), iszero(eq(shr(224, selector), 0xe9ae5c53))) { // execute(bytes32,bytes)
                    failure := 1
                    break
                }
                batch := eq(mode, shl(248, 1)) // MODE_BATCH
                if iszero(or(batch, iszero(mode))) {
                    failure := 2
                    break
                }
                if iszero(eq(calldataload(add(callData.offset, 36)), 0x40)) {
                    failure := 3
                    break
                }
                // The bytes must end in the last word: no room for a second, hidden payload.
                let len := calldataload(add(callData.offset, 68))
                let room := sub(size, 100)
                if or(gt(len, room), iszero(lt(sub(room, len), 32))) {
                    failure := 4
                    break
                }
                exec.offset := add(callData.offset, 100)
                exec.length := len
                if and(iszero(batch), lt(len, 52)) { failure := 5 }
                break
            }
        }
        if (failure != 0) {
            if (failure == 1) {
                if (size < 4) revert UnsupportedAccountFunction(bytes4(0));
                if (bytes4(selector) != EXECUTE_SELECTOR) revert UnsupportedAccountFunction(bytes4(selector));
                revert NonCanonicalExecution("execute calldata", size);
            }
            if (failure == 2) revert UnsupportedExecutionMode(mode);
            if (failure == 3) revert NonCanonicalExecution("bytes offset", 36);
            if (failure == 4) revert NonCanonicalExecution("bytes length", 68);
            revert NonCanonicalExecution("single execution", 100);
        }
    }

    /// @notice The one call of a single execution (at least 52 bytes, checked by {executionOf}).
    function single(bytes calldata exec) internal pure returns (address target, uint256 value, bytes calldata data) {
        target = address(uint160(_word(exec, 0) >> 96));
        value = _word(exec, 20);
        assembly ("memory-safe") {
            data.offset := add(exec.offset, 52)
            data.length := sub(exec.length, 52)
        }
    }

    /// @notice Number of calls in a batch, after checking the array header.
    function batchLength(bytes calldata exec) internal pure returns (uint256 n) {
        if (exec.length < 64 || _word(exec, 0) != 0x20) revert NonCanonicalExecution("array offset", 0);
        n = _word(exec, 32);
        if (n == 0 || n > MAX_BATCH_CALLS) revert NonCanonicalExecution("array length", 32);
        if (exec.length < 64 + 32 * n) revert NonCanonicalExecution("array heads", 64);
    }

    /// @notice Call `i` of a batch whose calls 0..i-1 were read with this function, in order.
    /// @param expected Where a canonical encoder puts element `i`, relative to the heads (start
    ///        with `32 * n`); returns where element `i + 1` must be.
    function batchCall(bytes calldata exec, uint256 i, uint256 expected)
        internal
        pure
        returns (address target, uint256 value, bytes calldata data, uint256 next)
    {
        uint256 head = 64 + 32 * i;
        if (_word(exec, head) != expected) revert NonCanonicalExecution("element offset", head);
        uint256 base = 64 + expected;
        if (exec.length < base + 128) revert NonCanonicalExecution("element", base);
        uint256 targetWord = _word(exec, base);
        if (targetWord >> 160 != 0) revert NonCanonicalExecution("target", base);
        target = address(uint160(targetWord));
        value = _word(exec, base + 32);
        if (_word(exec, base + 64) != 0x60) revert NonCanonicalExecution("callData offset", base + 64);
        uint256 len = _word(exec, base + 96);
        if (len > exec.length - base - 128) revert NonCanonicalExecution("callData length", base + 96);
        data = exec[base + 128:base + 128 + len];
        next = expected + 128 + ((len + 31) & ~uint256(31));
    }

    /// @notice Reverts unless the batch ended exactly at the end of its bytes.
    function checkBatchEnd(bytes calldata exec, uint256 end) internal pure {
        if (64 + end != exec.length) revert NonCanonicalExecution("batch end", exec.length);
    }
}
