// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";

/// @title TemplateRegistry
/// @notice Stores the regulator's standard contract templates.
contract TemplateRegistry is ITemplateRegistry {
    uint16 private constant FULL_BPS = 10_000;

    IMembership private immutable _membership;
    IEvidenceRegistry private immutable _evidence;
    mapping(uint64 templateId => Template) private _templates;
    mapping(bytes32 documentHash => uint64 templateId) private _templateOfDocument;
    uint64 private _count;

    constructor(IMembership membership, IEvidenceRegistry evidence) {
        _membership = membership;
        _evidence = evidence;
    }

    modifier onlyRegulator() {
        if (!_membership.hasRole(msg.sender, IMembership.Role.Regulator)) {
            revert TemplateRegistryUnauthorized(msg.sender);
        }
        _;
    }

    /// @inheritdoc ITemplateRegistry
    function registerTemplate(Template calldata terms) external onlyRegulator returns (uint64 templateId) {
        // Checks
        if (terms.industry == bytes32(0)) revert TemplateRegistryInvalidTerm("industry", 0);
        if (terms.maxAmount == 0) revert TemplateRegistryInvalidTerm("maxAmount", 0);
        if (terms.maxTermDays == 0) revert TemplateRegistryInvalidTerm("maxTermDays", 0);
        if (terms.minCustodyBps > FULL_BPS) revert TemplateRegistryInvalidTerm("minCustodyBps", terms.minCustodyBps);
        if (terms.refundRoundingFen == 0) revert TemplateRegistryInvalidTerm("refundRoundingFen", 0);
        if (terms.documentHash == bytes32(0)) revert TemplateRegistryInvalidTerm("documentHash", 0);
        uint64 existing = _templateOfDocument[terms.documentHash];
        if (existing != 0) revert TemplateRegistryDuplicateDocument(terms.documentHash, existing);

        // Effects
        templateId = ++_count;
        Template storage stored = _templates[templateId];
        stored.industry = terms.industry;
        stored.documentHash = terms.documentHash;
        stored.version = terms.version;
        stored.maxAmount = terms.maxAmount;
        stored.maxTermDays = terms.maxTermDays;
        stored.maxUnits = terms.maxUnits;
        stored.coolingOffDays = terms.coolingOffDays;
        stored.minCustodyBps = terms.minCustodyBps;
        stored.refundRule = terms.refundRule;
        stored.refundRoundingFen = terms.refundRoundingFen;
        stored.active = true;
        _templateOfDocument[terms.documentHash] = templateId;
        emit TemplateRegistered(
            templateId,
            terms.industry,
            terms.documentHash,
            terms.version,
            terms.maxAmount,
            terms.maxTermDays,
            terms.maxUnits,
            terms.coolingOffDays,
            terms.minCustodyBps,
            terms.refundRule,
            terms.refundRoundingFen
        );

        // Interactions
        _evidence.anchor(terms.documentHash, EvidenceKinds.TEMPLATE_REGISTERED, bytes32(uint256(templateId)));
    }

    /// @inheritdoc ITemplateRegistry
    function setTemplateActive(uint64 templateId, bool active) external onlyRegulator {
        _existing(templateId).active = active;
        emit TemplateActiveSet(templateId, active);
    }

    /// @inheritdoc ITemplateRegistry
    function getTemplate(uint64 templateId) external view returns (Template memory) {
        return _existing(templateId);
    }

    /// @inheritdoc ITemplateRegistry
    function templateOfDocument(bytes32 documentHash) external view returns (uint64) {
        return _templateOfDocument[documentHash];
    }

    /// @inheritdoc ITemplateRegistry
    function templateCount() external view returns (uint64) {
        return _count;
    }

    function _existing(uint64 templateId) private view returns (Template storage template) {
        template = _templates[templateId];
        if (template.industry == bytes32(0)) revert TemplateRegistryUnknownTemplate(templateId);
    }
}
