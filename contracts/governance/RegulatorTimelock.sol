// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title RegulatorTimelock
/// @notice The governance authority of a Yufu network: every change to who may sign and write
/// (sensitive roles, oracle signer sets, report consumers) is scheduled here by the regulator
/// officials' multisig and takes effect only after the minimum delay.
/// @dev OpenZeppelin's `TimelockController`, unchanged, with no admin: roles can only change
/// through the timelock's own delayed operations.
contract RegulatorTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling an operation and executing it.
    /// @param proposers Who may schedule and cancel operations (the officials' multisig).
    /// @param executors Who may execute ready operations (`address(0)`: anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
