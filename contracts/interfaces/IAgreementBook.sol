// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IMerchantRegistry} from "./IMerchantRegistry.sol";
import {IOracleHub} from "./IOracleHub.sol";

/// @title IAgreementBook
/// @notice Every prepaid plan on Yufu: signing, funding into custody, consumption and release,
/// cooling-off, early termination, expiry and default — who is entitled to what, per plan.
/// @dev Amounts are integer fen. No money moves on chain: the bank holds it, the book records who
/// is entitled to what. For every agreement, always:
/// deposited = frozen + released + refunded + upfront.
/// Money leaves custody only through the custody desk ({ICustodyDesk}): each payment is first
/// an instruction registered there, claiming its amount from this book; a settlement takes back
/// only entitlement no instruction has claimed, so no fen can be paid twice.
interface IAgreementBook {
    /// @notice An agreement's life-cycle state. States after `Active` are terminal.
    enum AgreementState {
        None,
        Signed,
        Active,
        Completed,
        CooledOff,
        Terminated,
        Expired,
        Defaulted
    }

    /// @notice Why money became releasable to the merchant.
    enum ReleaseReason {
        Upfront,
        Consumption,
        Settlement
    }

    /// @notice Why a refund was granted.
    enum RefundReason {
        CoolingOff,
        Termination,
        Expiry,
        Default
    }

    /// @notice Who a bank payout went to.
    enum Payee {
        Merchant,
        Consumer
    }

    /// @notice What a consumer's signed request asks for.
    enum ConsumerAction {
        CoolingOff,
        Terminate,
        // Withdraws the consumer's unexecuted request with the same nonce.
        Revoke
    }

    /// @notice The terms both parties sign (EIP-712 `Agreement`). Amounts in fen.
    /// @param documentHash SHA-256 of the filled standard contract.
    /// @param units Lessons, visits or sessions bought.
    /// @param unitPrice Face value of one unit; units × unitPrice = totalPaid + bonus.
    /// @param totalPaid What the consumer pays into custody.
    /// @param bonus Credit the merchant adds on top.
    /// @param expiry When the plan ends (unix seconds).
    /// @param salt Makes two otherwise equal plans distinct.
    struct AgreementTerms {
        address merchant;
        address consumer;
        uint64 templateId;
        bytes32 documentHash;
        uint64 units;
        uint128 unitPrice;
        uint128 totalPaid;
        uint128 bonus;
        uint64 expiry;
        bytes32 salt;
    }

    /// @notice An agreement as stored.
    struct Agreement {
        address merchant;
        uint64 templateId;
        AgreementState state;
        uint16 custodyBps;
        // Whether the upfront share became the merchant's: it waits in custody until the
        // cooling-off period ends (or the first consumption ends the right to cool off).
        bool upfrontReleased;
        address consumer;
        uint64 expiry;
        bytes32 documentHash;
        uint64 units;
        uint64 unitsConsumed;
        uint64 nextSequence;
        uint64 fundedAt;
        uint128 unitPrice;
        uint128 totalPaid;
        uint128 bonus;
        uint128 valueConsumed;
    }

    /// @notice An agreement's money, in fen.
    /// @param deposited Paid into custody.
    /// @param frozen Still frozen in custody.
    /// @param released Released from the frozen share to the merchant.
    /// @param refunded Refunded to the consumer from custody.
    /// @param upfront The non-frozen share, releasable to the merchant at funding.
    /// @param refundDue The whole refund granted when the plan ended.
    /// @param merchantOwed Refund custody and insurance did not cover: the merchant owes it.
    /// @param insuredShortfall Refund the insurance pool promised to pay.
    /// @param paidToMerchant Payouts to the merchant the bank confirmed.
    /// @param paidToConsumer Refund payouts from custody the bank confirmed (refunds and refused
    /// credits paid back).
    /// @param instructedToMerchant Payment instructions to the merchant registered and not
    /// rejected or returned (paid or still with the bank).
    /// @param instructedToConsumer The same for payments to the consumer.
    /// @param creditsRefused Payments into custody for this plan that it could not accept (it was
    /// funded or closed already, expired, the amount differed, or the merchant could no longer
    /// sell): owed back to the payer in full, outside the plan's own money.
    /// @param setOffGiven After the merchant's default: its entitlement from this plan that was
    /// set aside for its consumers' shortfalls instead of being paid to it.
    /// @param setOffCovered After the merchant's default: the part of this plan's shortfall paid
    /// from the merchant's set-off pool (before insurance). refundDue = refunded + setOffCovered +
    /// insuredShortfall + merchantOwed once the default is distributed.
    struct Ledger {
        uint128 deposited;
        uint128 frozen;
        uint128 released;
        uint128 refunded;
        uint128 upfront;
        uint128 refundDue;
        uint128 merchantOwed;
        uint128 insuredShortfall;
        uint128 paidToMerchant;
        uint128 paidToConsumer;
        uint128 instructedToMerchant;
        uint128 instructedToConsumer;
        uint128 creditsRefused;
        uint128 setOffGiven;
        uint128 setOffCovered;
    }

    /// @notice One delivered unit of service, signed by merchant and consumer (EIP-712 `ConsumptionRecord`).
    struct ConsumptionRecord {
        bytes32 agreementId;
        uint64 sequence;
        uint64 units;
        uint128 amount;
        uint64 consumedAt;
        bytes32 receiptHash;
    }

    /// @notice A consumer's signed request (EIP-712 `ConsumerRequest`): cool off, terminate, or
    /// revoke an earlier request with the same nonce.
    /// @param minRefund The least refund the consumer agreed to (the previewed one); the request
    /// is refused if the refund has since shrunk below it.
    /// @param nonce Distinguishes the consumer's requests on one plan; a revoked or executed
    /// nonce cannot be used again.
    /// @param deadline The request expires at this time, at most 7 days after it is submitted.
    struct ConsumerRequest {
        bytes32 agreementId;
        ConsumerAction action;
        uint128 minRefund;
        uint64 nonce;
        uint64 deadline;
    }

    /// @notice The bank's report that the consumer's payment arrived in custody.
    /// @param paidAt The bank's booking time of the payment; the plan's funding time, so the
    /// cooling-off period and the consumption log start when the consumer paid.
    struct FundingReport {
        bytes32 agreementId;
        uint128 amount;
        bytes32 bankReference;
        uint64 paidAt;
    }

    /// @notice The caller may not do this.
    error AgreementBookUnauthorized(address caller);
    /// @notice No agreement has this id.
    error AgreementBookUnknownAgreement(bytes32 agreementId);
    /// @notice An agreement with these terms exists already.
    error AgreementBookAlreadyExists(bytes32 agreementId);
    /// @notice A signature over `digest` was not made by `expected`.
    error AgreementBookInvalidSignature(bytes32 digest, address expected, address recovered);
    /// @notice The terms break a rule of their own; `term` names it (ASCII, left-aligned).
    error AgreementBookInvalidTerms(bytes32 term);
    /// @notice units × unitPrice must equal totalPaid + bonus.
    error AgreementBookValueMismatch(uint256 unitsValue, uint256 paidPlusBonus);
    /// @notice The template is switched off for new plans.
    error AgreementBookTemplateInactive(uint64 templateId);
    /// @notice The plan exceeds a template limit; `limit` names it (ASCII, left-aligned).
    error AgreementBookOutsideTemplate(bytes32 limit, uint256 allowed, uint256 got);
    /// @notice The merchant's industry is not the template's.
    error AgreementBookIndustryMismatch(bytes32 merchantIndustry, bytes32 templateIndustry);
    /// @notice The merchant may not sell new plans now.
    error AgreementBookMerchantCannotSell(address merchant);
    /// @notice The merchant's plans have stopped (revoked or defaulted).
    error AgreementBookMerchantStopped(address merchant, IMerchantRegistry.MerchantStatus status);
    /// @notice The agreement is in a state that does not allow this.
    error AgreementBookInvalidState(bytes32 agreementId, AgreementState state);
    /// @notice The report's feed, subject or payload hash does not match its payload.
    error AgreementBookReportMismatch(bytes32 expectedPayloadHash, bytes32 gotPayloadHash);
    /// @notice The bank reference was already reported.
    error AgreementBookDuplicateBankReference(bytes32 bankReference);
    /// @notice Records must come in strict sequence.
    error AgreementBookSequenceMismatch(bytes32 agreementId, uint64 expected, uint64 got);
    /// @notice The record asks for more units than are left (or for none).
    error AgreementBookInsufficientBalance(bytes32 agreementId, uint64 unitsLeft, uint64 unitsRequested);
    /// @notice The record's amount is not units × unitPrice.
    error AgreementBookAmountMismatch(bytes32 agreementId, uint256 expected, uint128 got);
    /// @notice The record's time is before funding, in the future, or after expiry.
    error AgreementBookInvalidConsumptionTime(bytes32 agreementId, uint64 consumedAt);
    /// @notice The cooling-off period ended at `endedAt`.
    error AgreementBookCoolingOffOver(bytes32 agreementId, uint64 endedAt);
    /// @notice Cooling-off needs an unused plan.
    error AgreementBookAlreadyConsumed(bytes32 agreementId, uint64 unitsConsumed);
    /// @notice The refund is now below the least the consumer agreed to when signing the request.
    error AgreementBookRefundBelowAgreed(bytes32 agreementId, uint128 minRefund, uint128 refund);
    /// @notice A request's deadline may lie at most 7 days ahead (`latest`).
    error AgreementBookRequestDeadlineTooFar(uint64 deadline, uint64 latest);
    /// @notice The request's nonce was revoked or used already.
    error AgreementBookRequestUsed(bytes32 agreementId, uint64 nonce);
    /// @notice The request asks for another action than the function it was sent to.
    error AgreementBookWrongRequestAction(ConsumerAction expected, ConsumerAction got);
    /// @notice The bank's booking time is after the report that carries it was issued.
    error AgreementBookPaidAfterReport(bytes32 agreementId, uint64 paidAt, uint64 issuedAt);
    /// @notice The consumer's signed request passed its deadline.
    error AgreementBookRequestExpired(uint64 deadline, uint64 nowTime);
    /// @notice The agreement has not expired yet.
    error AgreementBookNotExpired(bytes32 agreementId, uint64 expiry);
    /// @notice The set-off of a defaulted merchant is distributed only once every one of its
    /// plans went through {settleDefault} (`settled` of `total`).
    error AgreementBookSetOffNotReady(address merchant, uint256 settled, uint256 total);
    /// @notice The plan was not settled on default, or its set-off is distributed already.
    error AgreementBookNotAwaitingSetOff(bytes32 agreementId);
    /// @notice The merchant has not been declared in default.
    error AgreementBookMerchantNotDefaulted(address merchant);
    /// @notice A batch's arrays differ in length, or the batch is empty.
    error AgreementBookBatchMismatch(uint256 records, uint256 merchantSignatures, uint256 consumerSignatures);
    /// @notice Nothing is due to `payee` that is not instructed already.
    error AgreementBookNothingToInstruct(bytes32 agreementId, Payee payee);
    /// @notice Emitted when both parties' signed terms were recorded.
    event AgreementOpened(
        bytes32 indexed agreementId,
        address indexed merchant,
        address indexed consumer,
        uint64 templateId,
        bytes32 documentHash,
        uint64 units,
        uint128 unitPrice,
        uint128 totalPaid,
        uint128 bonus,
        uint64 expiry
    );
    /// @notice Emitted when the bank reported the payment and custody was fixed.
    event AgreementFunded(
        bytes32 indexed agreementId,
        bytes32 indexed bankReference,
        address indexed merchant,
        uint128 deposited,
        uint128 frozen,
        uint128 upfront,
        uint16 custodyBps
    );
    /// @notice Emitted for each accepted consumption record.
    event ConsumptionRecorded(
        bytes32 indexed agreementId,
        uint64 indexed sequence,
        address indexed merchant,
        uint64 units,
        uint128 amount,
        uint64 consumedAt,
        bytes32 receiptHash,
        bytes32 recordHash
    );
    /// @notice Emitted when money became releasable to the merchant; the bank pays it.
    event FundsReleased(
        bytes32 indexed agreementId, address indexed merchant, ReleaseReason indexed reason, uint128 amount
    );
    /// @notice Emitted when the bank reported a payment the plan could not accept; it is owed back
    /// to the payer in full. `reason` (ASCII, left-aligned): "state", "expired", "amount" or
    /// "merchant".
    event CreditRefused(
        bytes32 indexed agreementId, bytes32 indexed bankReference, uint128 amount, bytes32 reason
    );
    /// @notice Emitted when a defaulted merchant's entitlement from a plan was set aside for its
    /// consumers' shortfalls.
    event SetOffSwept(bytes32 indexed agreementId, address indexed merchant, uint128 amount);
    /// @notice Emitted when part of a plan's shortfall was paid from its merchant's set-off pool.
    event SetOffApplied(bytes32 indexed agreementId, address indexed merchant, uint128 amount);
    /// @notice Emitted when a consumer withdrew an unexecuted request.
    event RequestRevoked(bytes32 indexed agreementId, uint64 indexed nonce);
    /// @notice Emitted when a settlement took back money the merchant was entitled to and no
    /// payment instruction had claimed yet.
    event EntitlementReclaimed(bytes32 indexed agreementId, address indexed merchant, uint128 amount);
    /// @notice Emitted when a refund was granted; the bank pays `fromCustody`.
    event RefundGranted(
        bytes32 indexed agreementId,
        address indexed consumer,
        RefundReason indexed reason,
        uint128 refund,
        uint128 fromCustody,
        uint128 shortfall
    );
    /// @notice Emitted when an agreement reached a terminal state.
    event AgreementClosed(bytes32 indexed agreementId, AgreementState indexed state);
    /// @notice Records a plan both parties signed.
    /// @dev Emits {AgreementOpened}. Anchors the agreement id, which commits to the document hash.
    /// Requirements:
    /// - The caller is the merchant or an operator.
    /// - Both signatures are valid EIP-712 `Agreement` signatures of merchant and consumer.
    /// - The template is active and of the merchant's industry; the merchant may sell.
    /// - Amount, units and term within the template's limits; units × unitPrice = totalPaid + bonus,
    ///   which fits in 128 bits.
    /// @param terms The signed terms.
    /// @param merchantSignature The merchant's signature.
    /// @param consumerSignature The consumer's signature.
    /// @return agreementId The EIP-712 digest of the terms.
    function openAgreement(
        AgreementTerms calldata terms,
        bytes calldata merchantSignature,
        bytes calldata consumerSignature
    ) external returns (bytes32 agreementId);

    /// @notice Records the bank's report of a payment into custody for a plan: activates the plan,
    /// or, when the plan cannot accept it, records it as owed back to the payer.
    /// @dev Emits {AgreementFunded}, or {CreditRefused} when the plan is not Signed, has expired,
    /// the amount is not totalPaid, or the merchant may no longer sell — the money is in the
    /// custody account either way, so every credit is recorded. The custody ratio is fixed now:
    /// the template's minimum raised to the merchant's tier floor. The funding time is the bank's
    /// booking time. The upfront (not frozen) share stays in custody until the cooling-off period
    /// ends or the first consumption ends the right to cool off; only then is it released
    /// ({FundsReleased} with reason Upfront).
    /// Requirements:
    /// - The caller is an oracle; the report is a valid bank-feed report about the agreement
    ///   carrying keccak256(abi.encode(funding)).
    /// - The agreement exists; the bank reference is new; the booking time is not after the
    ///   report's issue time.
    function confirmFunding(
        FundingReport calldata funding,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice Records one consumption and releases the frozen money it earned.
    /// @dev Emits {ConsumptionRecorded}, {FundsReleased} when money was earned (and, at the first
    /// record, for the upfront share), and
    /// {AgreementClosed} when the plan is used up.
    /// Requirements:
    /// - The caller is the merchant or an operator.
    /// - The agreement is Active and its merchant neither revoked nor defaulted.
    /// - The sequence is the next one; units are left; amount = units × unitPrice.
    /// - consumedAt lies between funding and now, and not after expiry.
    /// - Merchant and consumer signed the record.
    function recordConsumption(
        ConsumptionRecord calldata record,
        bytes calldata merchantSignature,
        bytes calldata consumerSignature
    ) external;

    /// @notice Records many consumptions at once, all or nothing.
    /// @dev As {recordConsumption}, for each record in order.
    function recordConsumptionBatch(
        ConsumptionRecord[] calldata records,
        bytes[] calldata merchantSignatures,
        bytes[] calldata consumerSignatures
    ) external;

    /// @notice Cancels an unused plan within its cooling-off period: the whole payment is refunded.
    /// @dev Emits {RefundGranted}, {EntitlementReclaimed} (the upfront share, still held) and
    /// {AgreementClosed}. The upfront share is never released before the cooling-off period
    /// ends, so custody always covers the whole refund.
    /// Requirements: the caller is the merchant or an operator; the consumer signed a
    /// `ConsumerRequest` (CoolingOff) not past its deadline (at most 7 days ahead), with an unused
    /// nonce and a minimum refund not above the payment; the plan is Active, unused, and
    /// within the template's cooling-off days of funding; the merchant is not in default (use
    /// {settleDefault}).
    function cancelInCoolingOff(ConsumerRequest calldata request, bytes calldata consumerSignature) external;

    /// @notice Ends a plan early at the consumer's request, refunding by the template's formula.
    /// @dev Emits {RefundGranted}, {EntitlementReclaimed} or {FundsReleased} (custody left over),
    /// and {AgreementClosed}. The refund is paid from custody, then from the merchant's
    /// entitlement no instruction has claimed; the rest is `merchantOwed`.
    /// Requirements: the caller is the merchant or an operator; the consumer signed a
    /// `ConsumerRequest` (Terminate) not past its deadline (at most 7 days ahead), with an unused
    /// nonce; the refund now is at least the request's `minRefund` (the previewed refund the
    /// consumer agreed to); the plan is Active; the merchant is not in default (use
    /// {settleDefault}). Whoever submits it — merchant or the platform relaying for the
    /// consumer — the consumer's remedy does not depend on the merchant.
    function terminate(ConsumerRequest calldata request, bytes calldata consumerSignature) external;

    /// @notice Withdraws a consumer's unexecuted request: its nonce can no longer be used.
    /// @dev Emits {RequestRevoked}. Requirements: the caller is the merchant or an operator (the
    /// platform relays for the consumer); the consumer signed a `ConsumerRequest` (Revoke) with
    /// the nonce to withdraw, not past its deadline, at most 7 days ahead; the nonce is unused.
    function revokeRequest(ConsumerRequest calldata request, bytes calldata consumerSignature) external;

    /// @notice Whether the consumer's request nonce on this plan was used or revoked.
    function isRequestNonceUsed(bytes32 agreementId, uint64 nonce) external view returns (bool);

    /// @notice Closes an expired plan; unused value is refunded by the template's formula.
    /// @dev Emits {AgreementClosed} (and refund events for an Active plan).
    /// Requirements: the caller is a member; the plan is Signed or Active and past its expiry; the
    /// merchant is not in default (use {settleDefault}).
    function expire(bytes32 agreementId) external;

    /// @notice Settles plans of a defaulted merchant, first of two steps: each plan's refund is
    /// paid from its own custody, and the merchant's entitlement no instruction has claimed (from
    /// this plan, used or not, open or closed) is set aside in the merchant's set-off pool.
    /// @dev Emits {RefundGranted}, {AgreementClosed} and {SetOffSwept} per plan. A plan settled
    /// before is skipped, so a settlement can be retried safely. The shortfall stays
    /// `merchantOwed` until {distributeSetOff}.
    /// Requirements: the caller is a member; each plan's merchant is Defaulted.
    function settleDefault(bytes32[] calldata agreementIds) external;

    /// @notice Second step of a default, once every plan of the merchant is settled: each listed
    /// plan's shortfall is paid from the merchant's set-off pool first, then claimed from the
    /// insurance cover in force at default; what is still missing stays `merchantOwed`.
    /// @dev Emits {SetOffApplied} and the pool's {IInsurancePool.ClaimOpened} per plan. What is
    /// left in the pool after every consumer is whole stays in custody: the merchant comes last.
    /// Requirements: the caller is a member; every plan of the merchant went through
    /// {settleDefault}; each listed plan is the merchant's, settled and not yet distributed.
    function distributeSetOff(address merchant, bytes32[] calldata agreementIds) external;

    /// @notice A defaulted merchant's set-off pool: entitlement set aside for its consumers not yet
    /// used, and how many of its plans were settled and distributed.
    function setOffOf(address merchant) external view returns (uint128 pool, uint64 settled, uint64 distributed);

    /// @notice The custody desk claims, for a payment instruction, what is due to `payee` and no
    /// instruction has claimed yet, up to `maxAmount`. A settlement never takes back a claimed fen.
    /// @dev Emits {FundsReleased} (Upfront) first when the cooling-off period is over and the
    /// upfront share was still held. Due to the merchant: upfront (once released) + released −
    /// instructed; due to the consumer: refunded − instructed.
    /// Requirements: the caller is the custody desk; the agreement exists; something is due; a
    /// merchant in default is paid nothing more.
    /// @return merchant The agreement's merchant, whose custody account pays.
    /// @return amount What was claimed, at most `maxAmount`.
    function claimPayment(bytes32 agreementId, Payee payee, uint128 maxAmount)
        external
        returns (address merchant, uint128 amount);

    /// @notice The custody desk records that the bank paid a claimed amount.
    /// @dev Requirements: the caller is the custody desk.
    function recordPayout(bytes32 agreementId, Payee payee, uint128 amount) external;

    /// @notice The custody desk gives a claim back: its instruction was rejected, or its payment
    /// (counted paid) came back into custody (`returned`). The amount is due again.
    /// @dev Requirements: the caller is the custody desk.
    function releaseClaim(bytes32 agreementId, Payee payee, uint128 amount, bool returned) external;

    /// @notice The custody desk this book works with.
    function custodyDesk() external view returns (address);

    /// @notice What terminating the plan now would refund: total, from custody, and the shortfall.
    function previewRefund(bytes32 agreementId)
        external
        view
        returns (uint128 refund, uint128 fromCustody, uint128 shortfall);

    /// @notice The agreement `agreementId`.
    function getAgreement(bytes32 agreementId) external view returns (Agreement memory);

    /// @notice The money of agreement `agreementId`.
    function getLedger(bytes32 agreementId) external view returns (Ledger memory);

    /// @notice The id (EIP-712 digest) the terms would get.
    function agreementDigest(AgreementTerms calldata terms) external view returns (bytes32);

    /// @notice The EIP-712 digest of a consumption record.
    function recordDigest(ConsumptionRecord calldata record) external view returns (bytes32);

    /// @notice The EIP-712 digest of a consumer request.
    function requestDigest(ConsumerRequest calldata request) external view returns (bytes32);

    /// @notice How many agreements `merchant` has.
    function agreementCount(address merchant) external view returns (uint256);

    /// @notice `merchant`'s agreement ids from `offset`, at most `limit`.
    function agreementsOf(address merchant, uint256 offset, uint256 limit) external view returns (bytes32[] memory);

}
