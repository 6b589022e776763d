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
    /// @notice Only the governance authority may grant or remove `role` once the bootstrap is closed.
    error MembershipGovernanceRequired(address caller, Role role, address governance);
    /// @notice The governance authority was already handed over; the bootstrap is closed for good.
    error MembershipGovernanceAlreadySet(address governance);

    /// @notice Emitted when `account` was granted `role` on behalf of `organisationId`.
    event MemberAdmitted(
        address indexed account, Role indexed role, bytes32 indexed organisationId, address admittedBy
    );
    /// @notice Emitted when `role` was taken from `account`.
    event MemberRemoved(address indexed account, Role indexed role, address removedBy);
    /// @notice Emitted when the bootstrap closed and `governance` took over the sensitive powers.
    event GovernanceHandedOver(address indexed governance, address handedOverBy);

    /// @notice Grants `role` to `account`, which acts for `organisationId`.
    /// @dev Emits {MemberAdmitted}. The sensitive roles (Regulator, Validator, Oracle, System)
    /// decide who may sign and write, so after {handOverToGovernance} only the governance
    /// authority (the officials' multisig through a timelock) grants them.
    /// Requirements:
    /// - For a sensitive role: the caller is the governance authority, or, before the hand-over,
    ///   a regulator. For any other role: the caller is a regulator.
    /// - `account` is not zero, `role` is not `None` and `account` does not hold it yet.
    /// @param account The member's account.
    /// @param role The role granted.
    /// @param organisationId Hash identifying the organisation the account acts for.
    function admit(address account, Role role, bytes32 organisationId) external;

    /// @notice Takes `role` from `account`.
    /// @dev Emits {MemberRemoved}.
    /// Requirements:
    /// - For a sensitive role: the caller is the governance authority, or, before the hand-over,
    ///   a regulator. For any other role: the caller is a regulator.
    /// - `account` holds `role`, and is not the last regulator or the last validator.
    /// @param account The member's account.
    /// @param role The role removed.
    function remove(address account, Role role) external;

    /// @notice Closes the bootstrap: from now on only `governance` grants and removes the
    /// sensitive roles and changes the oracle hub's signer sets, consumers and report age.
    /// @dev Emits {GovernanceHandedOver}. Can happen once; there is no way back.
    /// Requirements:
    /// - The caller is a regulator.
    /// - No governance authority was set before; `governance` is not zero.
    /// @param governance The governance authority (the regulator officials' timelock).
    function handOverToGovernance(address governance) external;

    /// @notice The governance authority, or zero while the bootstrap is open.
    function governance() external view returns (address);

    /// @notice Whether granting or removing `role` needs the governance authority.
    function isSensitiveRole(Role role) external pure returns (bool);

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
