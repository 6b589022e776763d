// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title EvidenceKinds
/// @notice The kinds of evidence Yufu anchors. The Python client mirrors these numbers
/// (`chain.messages.EvidenceKind`); never renumber, only append.
library EvidenceKinds {
    uint16 internal constant DOCUMENT = 1;
    uint16 internal constant BATCH = 2;
    uint16 internal constant TEMPLATE_REGISTERED = 10;
    uint16 internal constant MERCHANT_APPLIED = 20;
    uint16 internal constant LICENCE_ATTESTED = 21;
    uint16 internal constant MERCHANT_STATUS_CHANGED = 22;
    uint16 internal constant RISK_TIER_CHANGED = 23;
    uint16 internal constant AGREEMENT_OPENED = 30;
    uint16 internal constant AGREEMENT_FUNDED = 31;
    uint16 internal constant CONSUMPTION_RECORDED = 32;
    uint16 internal constant COOLING_OFF_CANCELLED = 33;
    uint16 internal constant AGREEMENT_TERMINATED = 34;
    uint16 internal constant AGREEMENT_EXPIRED = 35;
    uint16 internal constant DEFAULT_SETTLED = 36;
    uint16 internal constant PAYOUT_CONFIRMED = 37;
    uint16 internal constant CUSTODY_ANOMALY = 38;
    uint16 internal constant PAYMENT_INSTRUCTED = 39;
    uint16 internal constant PAYMENT_OUTCOME = 43;
    uint16 internal constant CREDIT_REFUSED = 44;
    uint16 internal constant POLICY_WRITTEN = 40;
    uint16 internal constant CLAIM_OPENED = 41;
    uint16 internal constant CLAIM_PAID = 42;
    uint16 internal constant COMPLAINT_FILED = 50;
    uint16 internal constant COMPLAINT_ANSWERED = 51;
    uint16 internal constant COMPLAINT_RESOLVED = 52;
}
