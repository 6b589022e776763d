// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IAgreementBook} from "./interfaces/IAgreementBook.sol";
import {ICustodyDesk} from "./interfaces/ICustodyDesk.sol";
import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IInsurancePool} from "./interfaces/IInsurancePool.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {IMerchantRegistry} from "./interfaces/IMerchantRegistry.sol";
import {IOracleHub} from "./interfaces/IOracleHub.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";
import {Feeds} from "./libraries/Feeds.sol";
import {RefundMath} from "./libraries/RefundMath.sol";

/// @title AgreementBook
/// @notice All of Yufu's prepaid agreements and their money, in one contract.
contract AgreementBook is IAgreementBook, EIP712 {
    /// Where a plan of a defaulted merchant stands in the two steps of its default.
    enum DefaultStage {
        None,
        Settled,
        Distributed
    }

    /// A defaulted merchant's set-off: its entitlement set aside for its consumers; one slot.
    struct SetOff {
        uint128 pool;
        uint64 settled;
        uint64 distributed;
    }

    bytes32 private constant AGREEMENT_TYPEHASH = keccak256(
        "Agreement(address merchant,address consumer,uint64 templateId,bytes32 documentHash,uint64 units,"
        "uint128 unitPrice,uint128 totalPaid,uint128 bonus,uint64 expiry,bytes32 salt)"
    );
    bytes32 private constant RECORD_TYPEHASH = keccak256(
        "ConsumptionRecord(bytes32 agreementId,uint64 sequence,uint64 units,uint128 amount,uint64 consumedAt,"
        "bytes32 receiptHash)"
    );
    bytes32 private constant REQUEST_TYPEHASH = keccak256(
        "ConsumerRequest(bytes32 agreementId,uint8 action,uint128 minRefund,uint64 nonce,uint64 deadline)"
    );
    /// A consumer's signed request stays valid at most this long.
    uint64 private constant MAX_REQUEST_LIFETIME = 7 days;

    IMembership private immutable _membership;
    ITemplateRegistry private immutable _templates;
    IMerchantRegistry private immutable _merchants;
    IOracleHub private immutable _oracleHub;
    IEvidenceRegistry private immutable _evidence;
    IInsurancePool private immutable _insurance;
    ICustodyDesk private immutable _custodyDesk;

    mapping(bytes32 agreementId => Agreement) private _agreements;
    mapping(bytes32 agreementId => Ledger) private _ledgers;
    mapping(address merchant => bytes32[] agreementIds) private _agreementsOf;
    mapping(bytes32 agreementId => mapping(uint64 nonce => bool used)) private _requestNonceUsed;
    mapping(bytes32 agreementId => DefaultStage) private _defaultStage;
    mapping(address merchant => SetOff) private _setOff;

    constructor(
        IMembership membership,
        ITemplateRegistry templates,
        IMerchantRegistry merchants,
        IOracleHub oracleHub,
        IEvidenceRegistry evidence,
        IInsurancePool insurance,
        ICustodyDesk custodyDesk_
    ) EIP712("Yufu AgreementBook", "1") {
        _membership = membership;
        _templates = templates;
        _merchants = merchants;
        _oracleHub = oracleHub;
        _evidence = evidence;
        _insurance = insurance;
        _custodyDesk = custodyDesk_;
    }

    // ---------------------------------------------------------------- signing

    /// @inheritdoc IAgreementBook
    function openAgreement(
        AgreementTerms calldata terms,
        bytes calldata merchantSignature,
        bytes calldata consumerSignature
    ) external returns (bytes32 agreementId) {
        // Checks
        _requireMerchantOrOperator(terms.merchant);
        agreementId = agreementDigest(terms);
        if (_agreements[agreementId].state != AgreementState.None) revert AgreementBookAlreadyExists(agreementId);
        _requireSigner(agreementId, terms.merchant, merchantSignature);
        _requireSigner(agreementId, terms.consumer, consumerSignature);
        _checkTerms(terms);

        // Effects
        Agreement storage agreement = _agreements[agreementId];
        agreement.merchant = terms.merchant;
        agreement.templateId = terms.templateId;
        agreement.state = AgreementState.Signed;
        agreement.consumer = terms.consumer;
        agreement.expiry = terms.expiry;
        agreement.documentHash = terms.documentHash;
        agreement.units = terms.units;
        agreement.nextSequence = 1;
        agreement.unitPrice = terms.unitPrice;
        agreement.totalPaid = terms.totalPaid;
        agreement.bonus = terms.bonus;
        _agreementsOf[terms.merchant].push(agreementId);
        emit AgreementOpened(
            agreementId,
            terms.merchant,
            terms.consumer,
            terms.templateId,
            terms.documentHash,
            terms.units,
            terms.unitPrice,
            terms.totalPaid,
            terms.bonus,
            terms.expiry
        );

        // Interactions
        _evidence.anchor(agreementId, EvidenceKinds.AGREEMENT_OPENED, agreementId);
    }

    // ---------------------------------------------------------------- funding

    /// @inheritdoc IAgreementBook
    function confirmFunding(
        FundingReport calldata funding,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external {
        // Checks
        _requireRole(IMembership.Role.Oracle);
        bytes32 agreementId = funding.agreementId;
        Agreement storage agreement = _existing(agreementId);
        _checkReport(report, agreementId, keccak256(abi.encode(funding)));
        // One register of bank references for every posting, credits and debits alike: the desk's.
        if (_custodyDesk.isBankReferenceUsed(funding.bankReference)) {
            revert AgreementBookDuplicateBankReference(funding.bankReference);
        }
        if (funding.paidAt > report.issuedAt) {
            revert AgreementBookPaidAfterReport(agreementId, funding.paidAt, report.issuedAt);
        }
        bytes32 digest = _oracleHub.consume(report, signatures);
        bytes32 refusal = _fundingRefusal(agreement, funding.amount);
        if (refusal != bytes32(0)) {
            // The money is in the custody account all the same: it is owed back to the payer.
            _ledgers[agreementId].creditsRefused += funding.amount;
            emit CreditRefused(agreementId, funding.bankReference, funding.amount, refusal);
            _custodyDesk.deposit(agreement.merchant, agreementId, funding.amount, funding.bankReference);
            _evidence.anchor(digest, EvidenceKinds.CREDIT_REFUSED, agreementId);
            return;
        }

        // Effects
        uint16 templateMinBps = _templates.getTemplate(agreement.templateId).minCustodyBps;
        uint16 custodyBps = _merchants.custodyRatioBps(agreement.merchant, templateMinBps);
        uint128 frozen = uint128(RefundMath.frozenShare(funding.amount, custodyBps));
        uint128 upfront = funding.amount - frozen;
        agreement.state = AgreementState.Active;
        agreement.custodyBps = custodyBps;
        // Funding time is when the consumer paid, as the bank booked it (never after the signed
        // report): the cooling-off period and the consumption log start then.
        agreement.fundedAt = funding.paidAt;
        Ledger storage ledger = _ledgers[agreementId];
        ledger.deposited = funding.amount;
        ledger.frozen = frozen;
        ledger.upfront = upfront;
        // The upfront share waits in custody until the consumer can no longer cool off.
        agreement.upfrontReleased = upfront == 0;
        emit AgreementFunded(agreementId, funding.bankReference, agreement.merchant, funding.amount, frozen, upfront, custodyBps);

        // Interactions
        _custodyDesk.deposit(agreement.merchant, agreementId, funding.amount, funding.bankReference);
        _evidence.anchor(digest, EvidenceKinds.AGREEMENT_FUNDED, agreementId);
    }

    // ------------------------------------------------------------ consumption

    /// @inheritdoc IAgreementBook
    function recordConsumption(
        ConsumptionRecord calldata record,
        bytes calldata merchantSignature,
        bytes calldata consumerSignature
    ) external {
        _recordConsumption(record, merchantSignature, consumerSignature, address(0));
    }

    /// @inheritdoc IAgreementBook
    function recordConsumptionBatch(
        ConsumptionRecord[] calldata records,
        bytes[] calldata merchantSignatures,
        bytes[] calldata consumerSignatures
    ) external {
        uint256 count = records.length;
        if (count == 0 || merchantSignatures.length != count || consumerSignatures.length != count) {
            revert AgreementBookBatchMismatch(count, merchantSignatures.length, consumerSignatures.length);
        }
        // Consecutive records of one merchant need its status looked up only once.
        address checkedMerchant = address(0);
        for (uint256 i = 0; i < count; ++i) {
            checkedMerchant =
                _recordConsumption(records[i], merchantSignatures[i], consumerSignatures[i], checkedMerchant);
        }
    }

    // --------------------------------------------------------- ending a plan

    /// @inheritdoc IAgreementBook
    function cancelInCoolingOff(ConsumerRequest calldata request, bytes calldata consumerSignature) external {
        // Checks
        bytes32 agreementId = request.agreementId;
        Agreement storage agreement = _active(agreementId);
        bytes32 digest = _useConsumerRequest(agreement, request, ConsumerAction.CoolingOff, consumerSignature);
        if (agreement.unitsConsumed != 0) revert AgreementBookAlreadyConsumed(agreementId, agreement.unitsConsumed);
        uint64 endsAt = _coolingOffEnd(agreement);
        if (block.timestamp > endsAt) revert AgreementBookCoolingOffOver(agreementId, endsAt);
        if (request.minRefund > agreement.totalPaid) {
            revert AgreementBookRefundBelowAgreed(agreementId, request.minRefund, agreement.totalPaid);
        }

        // Effects and interactions
        _settle(
            agreementId,
            agreement,
            agreement.totalPaid,
            AgreementState.CooledOff,
            RefundReason.CoolingOff,
            digest,
            EvidenceKinds.COOLING_OFF_CANCELLED
        );
    }

    /// @inheritdoc IAgreementBook
    function terminate(ConsumerRequest calldata request, bytes calldata consumerSignature) external {
        // Checks
        bytes32 agreementId = request.agreementId;
        Agreement storage agreement = _active(agreementId);
        bytes32 digest = _useConsumerRequest(agreement, request, ConsumerAction.Terminate, consumerSignature);
        uint128 refund = _refundOwed(agreement);
        // The request binds the refund the consumer was shown: a merchant holding it until the
        // refund shrinks cannot execute it.
        if (refund < request.minRefund) revert AgreementBookRefundBelowAgreed(agreementId, request.minRefund, refund);

        // Effects and interactions
        _settle(
            agreementId,
            agreement,
            refund,
            AgreementState.Terminated,
            RefundReason.Termination,
            digest,
            EvidenceKinds.AGREEMENT_TERMINATED
        );
    }

    /// @inheritdoc IAgreementBook
    function revokeRequest(ConsumerRequest calldata request, bytes calldata consumerSignature) external {
        Agreement storage agreement = _existing(request.agreementId);
        _useConsumerRequest(agreement, request, ConsumerAction.Revoke, consumerSignature);
        emit RequestRevoked(request.agreementId, request.nonce);
    }

    /// @inheritdoc IAgreementBook
    function expire(bytes32 agreementId) external {
        // Checks
        if (!_membership.isMember(msg.sender)) revert AgreementBookUnauthorized(msg.sender);
        Agreement storage agreement = _existing(agreementId);
        if (agreement.state != AgreementState.Signed && agreement.state != AgreementState.Active) {
            revert AgreementBookInvalidState(agreementId, agreement.state);
        }
        if (block.timestamp <= agreement.expiry) revert AgreementBookNotExpired(agreementId, agreement.expiry);
        _requireNotDefaulted(agreement.merchant);
        bytes32 evidenceHash = keccak256(abi.encode("yufu.agreement.expired", agreementId));

        // Effects and interactions
        if (agreement.state == AgreementState.Signed) {
            _closeUnfunded(agreementId, agreement, AgreementState.Expired, evidenceHash, EvidenceKinds.AGREEMENT_EXPIRED);
        } else {
            _settle(
                agreementId,
                agreement,
                _refundOwed(agreement),
                AgreementState.Expired,
                RefundReason.Expiry,
                evidenceHash,
                EvidenceKinds.AGREEMENT_EXPIRED
            );
        }
    }

    /// @inheritdoc IAgreementBook
    function settleDefault(bytes32[] calldata agreementIds) external {
        if (!_membership.isMember(msg.sender)) revert AgreementBookUnauthorized(msg.sender);
        for (uint256 i = 0; i < agreementIds.length; ++i) {
            bytes32 agreementId = agreementIds[i];
            Agreement storage agreement = _existing(agreementId);
            address merchant = agreement.merchant;
            if (_merchants.getMerchant(merchant).status != IMerchantRegistry.MerchantStatus.Defaulted) {
                revert AgreementBookMerchantNotDefaulted(merchant);
            }
            // Settled before: skipped, so a settlement can be retried safely.
            if (_defaultStage[agreementId] != DefaultStage.None) continue;
            bytes32 evidenceHash = keccak256(abi.encode("yufu.agreement.default", agreementId));
            if (agreement.state == AgreementState.Signed) {
                _closeUnfunded(agreementId, agreement, AgreementState.Defaulted, evidenceHash, EvidenceKinds.DEFAULT_SETTLED);
            } else if (agreement.state == AgreementState.Active) {
                _settle(
                    agreementId,
                    agreement,
                    _refundOwed(agreement),
                    AgreementState.Defaulted,
                    RefundReason.Default,
                    evidenceHash,
                    EvidenceKinds.DEFAULT_SETTLED
                );
            }
            // Whatever the merchant is still owed by this plan waits for its consumers first.
            Ledger storage ledger = _ledgers[agreementId];
            uint128 swept = _uninstructedToMerchant(ledger);
            _defaultStage[agreementId] = DefaultStage.Settled;
            SetOff storage setOff = _setOff[merchant];
            setOff.settled += 1;
            if (swept > 0) {
                ledger.setOffGiven += swept;
                setOff.pool += swept;
                emit SetOffSwept(agreementId, merchant, swept);
            }
        }
    }

    /// @inheritdoc IAgreementBook
    function distributeSetOff(address merchant, bytes32[] calldata agreementIds) external {
        // Checks
        if (!_membership.isMember(msg.sender)) revert AgreementBookUnauthorized(msg.sender);
        SetOff storage setOff = _setOff[merchant];
        uint256 total = _agreementsOf[merchant].length;
        if (setOff.settled != total) revert AgreementBookSetOffNotReady(merchant, setOff.settled, total);
        for (uint256 i = 0; i < agreementIds.length; ++i) {
            bytes32 agreementId = agreementIds[i];
            Agreement storage agreement = _existing(agreementId);
            if (agreement.merchant != merchant || _defaultStage[agreementId] != DefaultStage.Settled) {
                revert AgreementBookNotAwaitingSetOff(agreementId);
            }

            // Effects: the pool pays first.
            _defaultStage[agreementId] = DefaultStage.Distributed;
            setOff.distributed += 1;
            Ledger storage ledger = _ledgers[agreementId];
            uint128 shortfall = ledger.merchantOwed;
            uint128 fromPool = shortfall < setOff.pool ? shortfall : setOff.pool;
            if (fromPool > 0) {
                setOff.pool -= fromPool;
                ledger.setOffCovered += fromPool;
                ledger.merchantOwed = shortfall - fromPool;
                emit SetOffApplied(agreementId, merchant, fromPool);
            }

            // Interactions: the insurer next, with the cover in force at default.
            uint128 rest = ledger.merchantOwed;
            if (rest > 0) {
                (, uint128 covered) = _insurance.openClaim(agreementId, merchant, agreement.consumer, rest);
                // Written after the call, but the pool is a trusted system contract that never calls back.
                ledger.insuredShortfall = covered;
                ledger.merchantOwed = rest - covered;
            }
        }
    }

    // ---------------------------------------------------- payments out of custody

    /// @inheritdoc IAgreementBook
    function claimPayment(bytes32 agreementId, Payee payee, uint128 maxAmount)
        external
        returns (address merchant, uint128 amount)
    {
        // Checks
        _requireCustodyDesk();
        Agreement storage agreement = _existing(agreementId);
        merchant = agreement.merchant;
        // Nothing more is paid to a merchant in default until its consumers are whole.
        if (payee == Payee.Merchant) _requireNotDefaulted(merchant);

        // Effects
        Ledger storage ledger = _ledgers[agreementId];
        if (payee == Payee.Merchant && !agreement.upfrontReleased && _coolingOffOver(agreement)) {
            _releaseUpfront(agreementId, agreement, ledger);
        }
        uint128 due = payee == Payee.Merchant
            ? (agreement.upfrontReleased ? ledger.upfront : 0) + ledger.released - ledger.instructedToMerchant
                - ledger.setOffGiven
            : ledger.refunded + ledger.creditsRefused + ledger.setOffCovered - ledger.instructedToConsumer;
        amount = maxAmount < due ? maxAmount : due;
        if (amount == 0) revert AgreementBookNothingToInstruct(agreementId, payee);
        if (payee == Payee.Merchant) {
            ledger.instructedToMerchant += amount;
        } else {
            ledger.instructedToConsumer += amount;
        }
    }

    /// @inheritdoc IAgreementBook
    function recordPayout(bytes32 agreementId, Payee payee, uint128 amount) external {
        _requireCustodyDesk();
        Ledger storage ledger = _ledgers[agreementId];
        if (payee == Payee.Merchant) {
            ledger.paidToMerchant += amount;
        } else {
            ledger.paidToConsumer += amount;
        }
    }

    /// @inheritdoc IAgreementBook
    function releaseClaim(bytes32 agreementId, Payee payee, uint128 amount, bool returned) external {
        _requireCustodyDesk();
        Ledger storage ledger = _ledgers[agreementId];
        if (payee == Payee.Merchant) {
            ledger.instructedToMerchant -= amount;
            if (returned) ledger.paidToMerchant -= amount;
            // A defaulted merchant's money that did not reach it waits for its consumers.
            if (_defaultStage[agreementId] != DefaultStage.None) {
                ledger.setOffGiven += amount;
                address merchant = _agreements[agreementId].merchant;
                _setOff[merchant].pool += amount;
                emit SetOffSwept(agreementId, merchant, amount);
            }
        } else {
            ledger.instructedToConsumer -= amount;
            if (returned) ledger.paidToConsumer -= amount;
        }
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IAgreementBook
    function previewRefund(bytes32 agreementId)
        external
        view
        returns (uint128 refund, uint128 fromCustody, uint128 shortfall)
    {
        Agreement storage agreement = _active(agreementId);
        refund = _refundOwed(agreement);
        (uint128 fromFrozen, uint128 reclaimed, uint128 missing) = _refundSources(_ledgers[agreementId], refund);
        fromCustody = fromFrozen + reclaimed;
        shortfall = missing;
    }

    /// @inheritdoc IAgreementBook
    function getAgreement(bytes32 agreementId) external view returns (Agreement memory) {
        return _existing(agreementId);
    }

    /// @inheritdoc IAgreementBook
    function getLedger(bytes32 agreementId) external view returns (Ledger memory) {
        _existing(agreementId);
        return _ledgers[agreementId];
    }

    /// @inheritdoc IAgreementBook
    function agreementDigest(AgreementTerms calldata terms) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    AGREEMENT_TYPEHASH,
                    terms.merchant,
                    terms.consumer,
                    terms.templateId,
                    terms.documentHash,
                    terms.units,
                    terms.unitPrice,
                    terms.totalPaid,
                    terms.bonus,
                    terms.expiry,
                    terms.salt
                )
            )
        );
    }

    /// @inheritdoc IAgreementBook
    function recordDigest(ConsumptionRecord calldata record) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    RECORD_TYPEHASH,
                    record.agreementId,
                    record.sequence,
                    record.units,
                    record.amount,
                    record.consumedAt,
                    record.receiptHash
                )
            )
        );
    }

    /// @inheritdoc IAgreementBook
    function requestDigest(ConsumerRequest calldata request) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    REQUEST_TYPEHASH,
                    request.agreementId,
                    uint8(request.action),
                    request.minRefund,
                    request.nonce,
                    request.deadline
                )
            )
        );
    }

    /// @inheritdoc IAgreementBook
    function isRequestNonceUsed(bytes32 agreementId, uint64 nonce) external view returns (bool) {
        return _requestNonceUsed[agreementId][nonce];
    }

    /// @inheritdoc IAgreementBook
    function agreementCount(address merchant) external view returns (uint256) {
        return _agreementsOf[merchant].length;
    }

    /// @inheritdoc IAgreementBook
    function agreementsOf(address merchant, uint256 offset, uint256 limit) external view returns (bytes32[] memory page) {
        bytes32[] storage ids = _agreementsOf[merchant];
        if (offset >= ids.length) return new bytes32[](0);
        uint256 end = ids.length - offset > limit ? offset + limit : ids.length;
        page = new bytes32[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = ids[i];
        }
    }

    /// @inheritdoc IAgreementBook
    function setOffOf(address merchant) external view returns (uint128 pool, uint64 settled, uint64 distributed) {
        SetOff storage setOff = _setOff[merchant];
        return (setOff.pool, setOff.settled, setOff.distributed);
    }

    /// @inheritdoc IAgreementBook
    function custodyDesk() external view returns (address) {
        return address(_custodyDesk);
    }

    // -------------------------------------------------------------- internals

    function _checkTerms(AgreementTerms calldata terms) private view {
        if (terms.consumer == address(0) || terms.consumer == terms.merchant) {
            revert AgreementBookInvalidTerms("consumer");
        }
        if (terms.units == 0) revert AgreementBookInvalidTerms("units");
        if (terms.totalPaid == 0) revert AgreementBookInvalidTerms("totalPaid");
        uint256 unitsValue = uint256(terms.units) * terms.unitPrice;
        uint256 paidPlusBonus = uint256(terms.totalPaid) + terms.bonus;
        // Consumed value is counted in 128 bits, so the plan's whole value must fit in them.
        if (paidPlusBonus > type(uint128).max) revert AgreementBookInvalidTerms("bonus");
        if (unitsValue != paidPlusBonus) revert AgreementBookValueMismatch(unitsValue, paidPlusBonus);
        if (terms.expiry <= block.timestamp) revert AgreementBookInvalidTerms("expiry");

        ITemplateRegistry.Template memory template = _templates.getTemplate(terms.templateId);
        if (!template.active) revert AgreementBookTemplateInactive(terms.templateId);
        if (!_merchants.canSell(terms.merchant)) revert AgreementBookMerchantCannotSell(terms.merchant);
        bytes32 industry = _merchants.getMerchant(terms.merchant).industry;
        if (industry != template.industry) revert AgreementBookIndustryMismatch(industry, template.industry);
        if (terms.totalPaid > template.maxAmount) {
            revert AgreementBookOutsideTemplate("maxAmount", template.maxAmount, terms.totalPaid);
        }
        if (template.maxUnits != 0 && terms.units > template.maxUnits) {
            revert AgreementBookOutsideTemplate("maxUnits", template.maxUnits, terms.units);
        }
        uint256 latestExpiry = block.timestamp + uint256(template.maxTermDays) * 1 days;
        if (terms.expiry > latestExpiry) revert AgreementBookOutsideTemplate("maxTermDays", latestExpiry, terms.expiry);
    }

    /// Records one consumption; returns the merchant whose status it checked, so a batch can skip
    /// checking it again.
    function _recordConsumption(
        ConsumptionRecord calldata record,
        bytes calldata merchantSignature,
        bytes calldata consumerSignature,
        address checkedMerchant
    ) private returns (address) {
        // Checks
        bytes32 agreementId = record.agreementId;
        Agreement storage agreement = _active(agreementId);
        address merchant = agreement.merchant;
        _requireMerchantOrOperator(merchant);
        if (merchant != checkedMerchant) _requireMerchantServing(merchant);
        if (record.sequence != agreement.nextSequence) {
            revert AgreementBookSequenceMismatch(agreementId, agreement.nextSequence, record.sequence);
        }
        uint64 unitsLeft = agreement.units - agreement.unitsConsumed;
        if (record.units == 0 || record.units > unitsLeft) {
            revert AgreementBookInsufficientBalance(agreementId, unitsLeft, record.units);
        }
        uint256 expectedAmount = uint256(record.units) * agreement.unitPrice;
        if (record.amount != expectedAmount) revert AgreementBookAmountMismatch(agreementId, expectedAmount, record.amount);
        if (
            record.consumedAt < agreement.fundedAt || record.consumedAt > block.timestamp
                || record.consumedAt > agreement.expiry
        ) revert AgreementBookInvalidConsumptionTime(agreementId, record.consumedAt);
        bytes32 digest = recordDigest(record);
        _requireSigner(digest, merchant, merchantSignature);
        _requireSigner(digest, agreement.consumer, consumerSignature);

        // Effects
        agreement.nextSequence = record.sequence + 1;
        agreement.unitsConsumed += record.units;
        agreement.valueConsumed += record.amount;
        emit ConsumptionRecorded(
            agreementId, record.sequence, merchant, record.units, record.amount, record.consumedAt, record.receiptHash, digest
        );
        Ledger storage ledger = _ledgers[agreementId];
        // A used plan can no longer be cooled off: its upfront share is the merchant's now.
        if (!agreement.upfrontReleased) _releaseUpfront(agreementId, agreement, ledger);
        uint256 total = uint256(agreement.totalPaid) + agreement.bonus;
        // The release is a derived counter: frozen-at-funding × consumed ÷ total, never beyond it.
        uint128 earned = uint128(
            RefundMath.earnedRelease(ledger.deposited - ledger.upfront, agreement.valueConsumed, total)
        );
        uint128 releasable = earned - ledger.released;
        if (releasable > 0) {
            ledger.frozen -= releasable;
            ledger.released = earned;
            emit FundsReleased(agreementId, merchant, ReleaseReason.Consumption, releasable);
        }
        if (agreement.unitsConsumed == agreement.units) {
            agreement.state = AgreementState.Completed;
            emit AgreementClosed(agreementId, AgreementState.Completed);
        }

        // Interactions
        _evidence.anchor(digest, EvidenceKinds.CONSUMPTION_RECORDED, agreementId);
        return merchant;
    }

    /// Ends an Active plan with `refund` owed. The frozen share pays first; then the merchant's
    /// entitlement the bank has not paid out yet is taken back; what is still missing is owed by the
    /// merchant (or, on default, claimed from insurance). Frozen money left over goes to the merchant.
    function _settle(
        bytes32 agreementId,
        Agreement storage agreement,
        uint128 refund,
        AgreementState state,
        RefundReason reason,
        bytes32 evidenceHash,
        uint16 evidenceKind
    ) private {
        // Effects
        Ledger storage ledger = _ledgers[agreementId];
        (uint128 fromFrozen, uint128 reclaimed, uint128 shortfall) = _refundSources(ledger, refund);
        uint128 leftOver = ledger.frozen - fromFrozen;
        ledger.frozen = 0;
        ledger.released += leftOver;
        // Reclaimed money comes out of the merchant's entitlements: released first, then upfront.
        uint128 fromReleased = reclaimed < ledger.released ? reclaimed : ledger.released;
        ledger.released -= fromReleased;
        ledger.upfront -= reclaimed - fromReleased;
        ledger.refunded += fromFrozen + reclaimed;
        ledger.refundDue = refund;
        // On default this is provisional: the set-off and the insurer pay it down later.
        ledger.merchantOwed = shortfall;
        agreement.state = state;
        // What the refund left of a still-held upfront share is the merchant's now.
        bool upfrontWasHeld = !agreement.upfrontReleased;
        agreement.upfrontReleased = true;
        if (reclaimed > 0) emit EntitlementReclaimed(agreementId, agreement.merchant, reclaimed);
        emit RefundGranted(agreementId, agreement.consumer, reason, refund, fromFrozen + reclaimed, shortfall);
        if (leftOver > 0) emit FundsReleased(agreementId, agreement.merchant, ReleaseReason.Settlement, leftOver);
        if (upfrontWasHeld && ledger.upfront > 0) {
            emit FundsReleased(agreementId, agreement.merchant, ReleaseReason.Upfront, ledger.upfront);
        }
        emit AgreementClosed(agreementId, state);

        // Interactions
        _evidence.anchor(evidenceHash, evidenceKind, agreementId);
    }

    /// Where a refund of `refund` comes from: the frozen share, then the merchant's entitlement no
    /// payment instruction has claimed (money instructed may be on its way out of custody), and
    /// the shortfall nobody in custody can cover.
    function _refundSources(Ledger storage ledger, uint128 refund)
        private
        view
        returns (uint128 fromFrozen, uint128 reclaimed, uint128 shortfall)
    {
        uint128 frozen = ledger.frozen;
        fromFrozen = refund < frozen ? refund : frozen;
        uint128 uninstructed = _uninstructedToMerchant(ledger);
        uint128 rest = refund - fromFrozen;
        reclaimed = rest < uninstructed ? rest : uninstructed;
        shortfall = rest - reclaimed;
    }

    /// The merchant's entitlement no instruction has claimed and no set-off has taken.
    function _uninstructedToMerchant(Ledger storage ledger) private view returns (uint128) {
        return ledger.upfront + ledger.released - ledger.instructedToMerchant - ledger.setOffGiven;
    }

    function _releaseUpfront(bytes32 agreementId, Agreement storage agreement, Ledger storage ledger) private {
        agreement.upfrontReleased = true;
        emit FundsReleased(agreementId, agreement.merchant, ReleaseReason.Upfront, ledger.upfront);
    }

    function _coolingOffEnd(Agreement storage agreement) private view returns (uint64) {
        return agreement.fundedAt + uint64(_templates.getTemplate(agreement.templateId).coolingOffDays) * 1 days;
    }

    /// Whether the consumer can no longer cool off: the period passed or the plan was used.
    function _coolingOffOver(Agreement storage agreement) private view returns (bool) {
        return agreement.unitsConsumed != 0 || block.timestamp > _coolingOffEnd(agreement);
    }

    function _closeUnfunded(
        bytes32 agreementId,
        Agreement storage agreement,
        AgreementState state,
        bytes32 evidenceHash,
        uint16 evidenceKind
    ) private {
        agreement.state = state;
        emit AgreementClosed(agreementId, state);
        _evidence.anchor(evidenceHash, evidenceKind, agreementId);
    }

    function _refundOwed(Agreement storage agreement) private view returns (uint128) {
        ITemplateRegistry.Template memory template = _templates.getTemplate(agreement.templateId);
        return uint128(
            RefundMath.refundOwed(
                template.refundRule,
                agreement.totalPaid,
                agreement.bonus,
                agreement.valueConsumed,
                template.refundRoundingFen
            )
        );
    }

    /// Checks a consumer's signed request for `action` and uses up its nonce; returns its digest.
    function _useConsumerRequest(
        Agreement storage agreement,
        ConsumerRequest calldata request,
        ConsumerAction action,
        bytes calldata consumerSignature
    ) private returns (bytes32 digest) {
        _requireMerchantOrOperator(agreement.merchant);
        _requireNotDefaulted(agreement.merchant);
        if (request.action != action) revert AgreementBookWrongRequestAction(action, request.action);
        uint64 deadline = request.deadline;
        if (block.timestamp > deadline) revert AgreementBookRequestExpired(deadline, uint64(block.timestamp));
        uint64 latest = uint64(block.timestamp) + MAX_REQUEST_LIFETIME;
        if (deadline > latest) revert AgreementBookRequestDeadlineTooFar(deadline, latest);
        if (_requestNonceUsed[request.agreementId][request.nonce]) {
            revert AgreementBookRequestUsed(request.agreementId, request.nonce);
        }
        digest = requestDigest(request);
        _requireSigner(digest, agreement.consumer, consumerSignature);
        _requestNonceUsed[request.agreementId][request.nonce] = true;
    }

    /// Why a plan cannot accept a payment into custody (ASCII, left-aligned), or zero if it can.
    function _fundingRefusal(Agreement storage agreement, uint128 amount) private view returns (bytes32) {
        if (agreement.state != AgreementState.Signed) return "state";
        if (block.timestamp > agreement.expiry) return "expired";
        if (amount != agreement.totalPaid) return "amount";
        if (!_merchants.canSell(agreement.merchant)) return "merchant";
        return bytes32(0);
    }

    function _checkReport(IOracleHub.Report calldata report, bytes32 subject, bytes32 payloadHash) private pure {
        if (report.feed != Feeds.BANK || report.subject != subject || report.payloadHash != payloadHash) {
            revert AgreementBookReportMismatch(payloadHash, report.payloadHash);
        }
    }

    function _requireSigner(bytes32 digest, address expected, bytes calldata signature) private pure {
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || recovered != expected) {
            revert AgreementBookInvalidSignature(digest, expected, recovered);
        }
    }

    function _requireCustodyDesk() private view {
        if (msg.sender != address(_custodyDesk)) revert AgreementBookUnauthorized(msg.sender);
    }

    function _requireRole(IMembership.Role role) private view {
        if (!_membership.hasRole(msg.sender, role)) revert AgreementBookUnauthorized(msg.sender);
    }

    function _requireMerchantOrOperator(address merchant) private view {
        if (msg.sender != merchant && !_membership.hasRole(msg.sender, IMembership.Role.Operator)) {
            revert AgreementBookUnauthorized(msg.sender);
        }
    }

    function _requireNotDefaulted(address merchant) private view {
        IMerchantRegistry.MerchantStatus status = _merchants.getMerchant(merchant).status;
        if (status == IMerchantRegistry.MerchantStatus.Defaulted) revert AgreementBookMerchantStopped(merchant, status);
    }

    function _requireMerchantServing(address merchant) private view {
        IMerchantRegistry.MerchantStatus status = _merchants.getMerchant(merchant).status;
        if (status != IMerchantRegistry.MerchantStatus.Approved && status != IMerchantRegistry.MerchantStatus.Suspended) {
            revert AgreementBookMerchantStopped(merchant, status);
        }
    }

    function _existing(bytes32 agreementId) private view returns (Agreement storage agreement) {
        agreement = _agreements[agreementId];
        if (agreement.state == AgreementState.None) revert AgreementBookUnknownAgreement(agreementId);
    }

    function _active(bytes32 agreementId) private view returns (Agreement storage agreement) {
        agreement = _existing(agreementId);
        if (agreement.state != AgreementState.Active) revert AgreementBookInvalidState(agreementId, agreement.state);
    }
}
