// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IMembership
/// @notice Who may act on the Yufu chain: member organisations, their roles and the validator set.
/// @dev Answers Hyperledger Besu's account-permissioning question, so the same contract can guard
/// the Yufu node and a Besu network.
interface IMembership {
    /// @notice The roles a member account can hold. An account may hold several.
    enum Role {
        None,
        Regulator,
        Validator,
        Bank,
        Insurer,
        Oracle,
        Auditor,
        Merchant,
        Operator,
        System
    }

    /// @notice The caller lacks the role the function requires.
    error MembershipUnauthorized(address caller, Role required);
    /// @notice The zero address cannot be a member.
    error MembershipZeroAddress();
    /// @notice `Role.None` cannot be granted or removed.
    error MembershipInvalidRole(Role role);
    /// @notice The account already holds the role.
    error MembershipRoleAlreadyHeld(address account, Role role);
    /// @notice The account does not hold the role.
    error MembershipRoleNotHeld(address account, Role role);
    /// @notice Removing the account would leave the chain without a regulator or without a validator.
    error MembershipLastHolder(address account, Role role);

    /// @notice Emitted when `account` was granted `role` on behalf of `organisationId`.
    event MemberAdmitted(
        address indexed account, Role indexed role, bytes32 indexed organisationId, address admittedBy
    );
    /// @notice Emitted when `role` was taken from `account`.
    event MemberRemoved(address indexed account, Role indexed role, address removedBy);

    /// @notice Grants `role` to `account`, which acts for `organisationId`.
    /// @dev Emits {MemberAdmitted}.
    /// Requirements:
    /// - The caller is a regulator.
    /// - `account` is not zero, `role` is not `None` and `account` does not hold it yet.
    /// @param account The member's account.
    /// @param role The role granted.
    /// @param organisationId Hash identifying the organisation the account acts for.
    function admit(address account, Role role, bytes32 organisationId) external;

    /// @notice Takes `role` from `account`.
    /// @dev Emits {MemberRemoved}.
    /// Requirements:
    /// - The caller is a regulator.
    /// - `account` holds `role`, and is not the last regulator or the last validator.
    /// @param account The member's account.
    /// @param role The role removed.
    function remove(address account, Role role) external;

    /// @notice Whether `account` holds `role`.
    function hasRole(address account, Role role) external view returns (bool);

    /// @notice Whether `account` holds any role.
    function isMember(address account) external view returns (bool);

    /// @notice The bitmask of roles held by `account` (bit `i` set for `Role(i)`).
    function rolesOf(address account) external view returns (uint256);

    /// @notice The organisation `account` acts for (zero when not a member).
    function organisationOf(address account) external view returns (bytes32);

    /// @notice The accounts allowed to seal blocks, in admission order.
    function getValidators() external view returns (address[] memory);

    /// @notice Besu's account-permissioning question: may `sender` send this transaction?
    /// @dev Members may send any call; only a regulator may create contracts (`target` zero).
    /// @param sender The transaction's signer.
    /// @param target The recipient, zero for a contract creation.
    /// @param value The wei value (unused: money lives in the bank, not on chain).
    /// @param gasPrice The gas price (unused).
    /// @param gasLimit The gas limit (unused).
    /// @param payload The call data (unused).
    function transactionAllowed(
        address sender,
        address target,
        uint256 value,
        uint256 gasPrice,
        uint256 gasLimit,
        bytes calldata payload
    ) external view returns (bool);
}
