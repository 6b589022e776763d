// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ITemplateRegistry
/// @notice The regulator's standard prepaid contracts, per industry, with the limits the chain enforces.
interface ITemplateRegistry {
    /// @notice How a refund is computed when a plan ends early.
    /// @dev `BonusConversion`: consumed value converts at paid ÷ (paid + bonus), i.e. pro rata.
    /// `FaceValue`: consumed value is charged at face value against the money paid.
    /// `Unspecified`: no formula agreed; the consumer's reading (the larger refund) wins.
    enum RefundRule {
        Unspecified,
        BonusConversion,
        FaceValue
    }

    /// @notice A template's terms. Amounts in fen.
    /// @param industry The industry the template serves, e.g. keccak256("training").
    /// @param documentHash SHA-256 of the standard contract's text.
    /// @param version The template's version within its industry.
    /// @param maxAmount The largest amount a consumer may prepay for one plan.
    /// @param maxTermDays The longest term of a plan, in days.
    /// @param maxUnits The most units (lessons, visits) a plan may hold; zero means no limit.
    /// @param coolingOffDays Days after payment during which an unused plan is refunded in full.
    /// @param minCustodyBps The least share of a payment kept frozen in custody, in basis points.
    /// @param refundRule How early-termination refunds are computed.
    /// @param refundRoundingFen Refunds are rounded up to a multiple of this (1 = fen, 100 = yuan).
    /// @param active Whether new plans may use the template.
    struct Template {
        bytes32 industry;
        bytes32 documentHash;
        uint32 version;
        uint128 maxAmount;
        uint32 maxTermDays;
        uint32 maxUnits;
        uint16 coolingOffDays;
        uint16 minCustodyBps;
        RefundRule refundRule;
        uint32 refundRoundingFen;
        bool active;
    }

    /// @notice The caller is not a regulator.
    error TemplateRegistryUnauthorized(address caller);
    /// @notice No template has this id.
    error TemplateRegistryUnknownTemplate(uint64 templateId);
    /// @notice A template with this document is registered already.
    error TemplateRegistryDuplicateDocument(bytes32 documentHash, uint64 templateId);
    /// @notice A term is out of range; `term` names it.
    error TemplateRegistryInvalidTerm(bytes32 term, uint256 value);

    /// @notice Emitted when a template was registered.
    event TemplateRegistered(
        uint64 indexed templateId,
        bytes32 indexed industry,
        bytes32 indexed documentHash,
        uint32 version,
        uint128 maxAmount,
        uint32 maxTermDays,
        uint32 maxUnits,
        uint16 coolingOffDays,
        uint16 minCustodyBps,
        RefundRule refundRule,
        uint32 refundRoundingFen
    );
    /// @notice Emitted when a template was switched on or off for new plans.
    event TemplateActiveSet(uint64 indexed templateId, bool active);

    /// @notice Registers a template; it is active at once.
    /// @dev Emits {TemplateRegistered}. Anchors the document hash as evidence, so a court can
    /// look the standard contract's text up by its hash.
    /// Requirements:
    /// - The caller is a regulator.
    /// - `maxAmount`, `maxTermDays`, `refundRoundingFen` are positive; `minCustodyBps <= 10000`.
    /// - The document hash is not zero and no other template has it.
    /// @param terms The terms; `active` is ignored.
    /// @return templateId The new template's id, counting from 1.
    function registerTemplate(Template calldata terms) external returns (uint64 templateId);

    /// @notice Switches a template on or off for new plans; existing plans are not affected.
    /// @dev Emits {TemplateActiveSet}. Requirements: the caller is a regulator; the template exists.
    function setTemplateActive(uint64 templateId, bool active) external;

    /// @notice The template `templateId`. Reverts with {TemplateRegistryUnknownTemplate} if none.
    function getTemplate(uint64 templateId) external view returns (Template memory);

    /// @notice The template registered with `documentHash`, zero if none.
    function templateOfDocument(bytes32 documentHash) external view returns (uint64);

    /// @notice How many templates exist.
    function templateCount() external view returns (uint64);
}
