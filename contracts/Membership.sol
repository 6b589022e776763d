// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IMembership} from "./interfaces/IMembership.sol";

/// @title Membership
/// @notice Member organisations, their roles and the validator set of a Yufu network.
contract Membership is IMembership {
    mapping(address account => uint256 roleMask) private _roles;
    mapping(address account => bytes32 organisationId) private _organisations;
    mapping(Role role => uint256 count) private _holders;
    address[] private _validators;
    address private _governance;

    /// @param regulator The first regulator account.
    /// @param regulatorOrganisation The regulator's organisation id.
    /// @param validators The genesis validators.
    /// @param validatorOrganisations The organisation id of each genesis validator.
    constructor(
        address regulator,
        bytes32 regulatorOrganisation,
        address[] memory validators,
        bytes32[] memory validatorOrganisations
    ) {
        _grant(regulator, Role.Regulator, regulatorOrganisation, msg.sender);
        for (uint256 i = 0; i < validators.length; ++i) {
            _grant(validators[i], Role.Validator, validatorOrganisations[i], msg.sender);
        }
    }

    modifier onlyRegulator() {
        if (!hasRole(msg.sender, Role.Regulator)) revert MembershipUnauthorized(msg.sender, Role.Regulator);
        _;
    }

    /// @dev Sensitive roles need the governance authority once the bootstrap is closed; every
    /// other role, and every role during the bootstrap, needs a regulator.
    modifier onlyAuthorityFor(Role role) {
        if (isSensitiveRole(role) && _governance != address(0)) {
            if (msg.sender != _governance) revert MembershipGovernanceRequired(msg.sender, role, _governance);
        } else if (!hasRole(msg.sender, Role.Regulator)) {
            revert MembershipUnauthorized(msg.sender, Role.Regulator);
        }
        _;
    }

    /// @inheritdoc IMembership
    function admit(address account, Role role, bytes32 organisationId) external onlyAuthorityFor(role) {
        _grant(account, role, organisationId, msg.sender);
    }

    /// @inheritdoc IMembership
    function remove(address account, Role role) external onlyAuthorityFor(role) {
        if (role == Role.None) revert MembershipInvalidRole(role);
        if (!hasRole(account, role)) revert MembershipRoleNotHeld(account, role);
        if ((role == Role.Regulator || role == Role.Validator) && _holders[role] == 1) {
            revert MembershipLastHolder(account, role);
        }

        _roles[account] &= ~_bit(role);
        _holders[role] -= 1;
        if (_roles[account] == 0) delete _organisations[account];
        if (role == Role.Validator) _dropValidator(account);
        emit MemberRemoved(account, role, msg.sender);
    }

    /// @inheritdoc IMembership
    function handOverToGovernance(address governance_) external onlyRegulator {
        if (_governance != address(0)) revert MembershipGovernanceAlreadySet(_governance);
        if (governance_ == address(0)) revert MembershipZeroAddress();
        _governance = governance_;
        emit GovernanceHandedOver(governance_, msg.sender);
    }

    /// @inheritdoc IMembership
    function governance() external view returns (address) {
        return _governance;
    }

    /// @inheritdoc IMembership
    function isSensitiveRole(Role role) public pure returns (bool) {
        return role == Role.Regulator || role == Role.Validator || role == Role.Oracle || role == Role.System;
    }

    /// @inheritdoc IMembership
    function hasRole(address account, Role role) public view returns (bool) {
        return _roles[account] & _bit(role) != 0;
    }

    /// @inheritdoc IMembership
    function isMember(address account) public view returns (bool) {
        return _roles[account] != 0;
    }

    /// @inheritdoc IMembership
    function rolesOf(address account) external view returns (uint256) {
        return _roles[account];
    }

    /// @inheritdoc IMembership
    function organisationOf(address account) external view returns (bytes32) {
        return _organisations[account];
    }

    /// @inheritdoc IMembership
    function getValidators() external view returns (address[] memory) {
        return _validators;
    }

    /// @inheritdoc IMembership
    function transactionAllowed(
        address sender,
        address target,
        uint256,
        uint256,
        uint256,
        bytes calldata
    ) external view returns (bool) {
        if (target == address(0)) return hasRole(sender, Role.Regulator);
        return isMember(sender);
    }

    function _grant(address account, Role role, bytes32 organisationId, address by) private {
        if (account == address(0)) revert MembershipZeroAddress();
        if (role == Role.None) revert MembershipInvalidRole(role);
        if (hasRole(account, role)) revert MembershipRoleAlreadyHeld(account, role);

        _roles[account] |= _bit(role);
        _organisations[account] = organisationId;
        _holders[role] += 1;
        if (role == Role.Validator) _validators.push(account);
        emit MemberAdmitted(account, role, organisationId, by);
    }

    function _dropValidator(address account) private {
        uint256 last = _validators.length - 1;
        for (uint256 i = 0; i <= last; ++i) {
            if (_validators[i] == account) {
                // Keep admission order: shift the tail left by one.
                for (uint256 j = i; j < last; ++j) {
                    _validators[j] = _validators[j + 1];
                }
                _validators.pop();
                return;
            }
        }
    }

    function _bit(Role role) private pure returns (uint256) {
        return uint256(1) << uint8(role);
    }
}
