// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A call target for rule tests: records its last call and accepts value.
contract Recorder {
    uint256 public calls;
    uint256 public a;
    uint256 public b;
    uint256 public c;
    uint256 public received;

    function record(uint256 a_, uint256 b_, uint256 c_) external payable {
        calls += 1;
        (a, b, c) = (a_, b_, c_);
        received += msg.value;
    }

    function fails() external pure {
        revert("Recorder: fails");
    }

    receive() external payable {
        calls += 1;
        received += msg.value;
    }

    fallback() external payable {
        calls += 1;
        received += msg.value;
    }
}
