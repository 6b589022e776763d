// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Feeds
/// @notice The ids of Yufu's oracle feeds. Each has its own signer set in the OracleHub.
library Feeds {
    bytes32 internal constant BANK = keccak256("yufu.feed.bank");
    bytes32 internal constant LICENCE = keccak256("yufu.feed.licence");
    bytes32 internal constant RISK = keccak256("yufu.feed.risk");
}
