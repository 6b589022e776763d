// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Safe} from "@safe-global/safe-smart-account/contracts/Safe.sol";

/// @title OfficialsSafe
/// @notice The singleton behind the regulator officials' k-of-n multisig.
/// @dev Safe Smart Account 1.5.0, unchanged. Deployed once; the officials' multisig is a
/// `SafeProxy` to it made by {OfficialsSafeProxyFactory}, set up with their keys and threshold.
contract OfficialsSafe is Safe {}
