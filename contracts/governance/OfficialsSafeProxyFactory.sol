// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {SafeProxyFactory} from "@safe-global/safe-smart-account/contracts/proxies/SafeProxyFactory.sol";

/// @title OfficialsSafeProxyFactory
/// @notice Creates and sets up the regulator officials' multisig in one transaction.
/// @dev Safe Smart Account 1.5.0's `SafeProxyFactory`, unchanged.
contract OfficialsSafeProxyFactory is SafeProxyFactory {}
