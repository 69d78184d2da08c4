// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC7579Utils, Execution} from "@openzeppelin/contracts/account/utils/draft-ERC7579Utils.sol";
import {ExecutionLib} from "../../src/libraries/ExecutionLib.sol";

/// @notice One decoded call, as both decoders report it.
struct Decoded {
    address target;
    uint256 value;
    bytes data;
}

/// @notice The validator's decoder (ExecutionLib) on operation calldata.
contract ValidatorDecoder {
    function decode(bytes calldata callData) external pure returns (Decoded[] memory calls) {
        (bool batch, bytes calldata exec) = ExecutionLib.executionOf(callData);
        if (!batch) {
            calls = new Decoded[](1);
            (address target, uint256 value, bytes calldata data) = ExecutionLib.single(exec);
            calls[0] = Decoded(target, value, data);
            return calls;
        }
        uint256 n = ExecutionLib.batchLength(exec);
        calls = new Decoded[](n);
        uint256 expected = 32 * n;
        for (uint256 i = 0; i < n; ++i) {
            (address target, uint256 value, bytes calldata data, uint256 next) = ExecutionLib.batchCall(exec, i, expected);
            calls[i] = Decoded(target, value, data);
            expected = next;
        }
        ExecutionLib.checkBatchEnd(exec, expected);
    }
}

/// @notice What the account executes: the same Solidity calldata decoding and OpenZeppelin
///         helpers as `AccountERC7579.execute`, reporting the calls instead of making them.
contract AccountDecoder {
    function execute(bytes32 mode, bytes calldata executionCalldata) external pure returns (Decoded[] memory calls) {
        if (mode[0] == 0x00) {
            calls = new Decoded[](1);
            (address target, uint256 value, bytes calldata data) = ERC7579Utils.decodeSingle(executionCalldata);
            calls[0] = Decoded(target, value, data);
        } else {
            Execution[] calldata batch = ERC7579Utils.decodeBatch(executionCalldata);
            calls = new Decoded[](batch.length);
            for (uint256 i = 0; i < batch.length; ++i) {
                calls[i] = Decoded(batch[i].target, batch[i].value, batch[i].callData);
            }
        }
    }
}
