// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAgreementBook} from "./IAgreementBook.sol";
import {IOracleHub} from "./IOracleHub.sol";

/// @title ICustodyDesk
/// @notice The merchants' custody accounts as the chain sees them, and the register of every
/// payment out of them. The bank pays only an instruction registered here, quoting its id, and
/// its feed reports each one paid, rejected or returned by that id; each end-of-day statement is
/// reconciled against the custody the desk holds.
/// @dev Amounts are integer fen. An instruction claims its amount from the AgreementBook when it
/// is registered, so a later settlement cannot take it back and pay it a second time. For every
/// merchant, always: custodyHeld = Σ deposited − Σ paid + Σ returned.
interface ICustodyDesk {
    /// @notice Where a payment instruction stands.
    enum InstructionState {
        None,
        Instructed,
        Paid,
        Rejected,
        Returned
    }

    /// @notice A merchant's custody account as the desk sees it; one storage slot.
    struct CustodyAccount {
        // Confirmed deposits minus confirmed payouts plus returns, in fen.
        uint128 held;
        // The last statement date reconciled, in days since 1970-01-01.
        uint64 lastReconciledDay;
    }

    /// @notice The bank feed asks the desk to register a payment out of custody.
    /// @param instructionId The id the bank will quote (the pain.001 EndToEndId is made from it).
    /// @param agreementId The plan whose money is paid.
    /// @param payee The merchant (its entitlement) or the consumer (the refund).
    /// @param amount The most to instruct; the desk instructs what is due and not yet instructed,
    /// up to this.
    struct PaymentInstruction {
        bytes32 instructionId;
        bytes32 agreementId;
        IAgreementBook.Payee payee;
        uint128 amount;
    }

    /// @notice A registered payment instruction, as stored.
    struct Instruction {
        bytes32 agreementId;
        IAgreementBook.Payee payee;
        InstructionState state;
        uint128 amount;
    }

    /// @notice The bank's report that it paid a registered instruction out of custody.
    struct PayoutReport {
        bytes32 agreementId;
        IAgreementBook.Payee payee;
        uint128 amount;
        bytes32 bankReference;
        bytes32 instructionId;
    }

    /// @notice The bank's report that it did not pay an instruction (Rejected) or that a paid one
    /// came back into custody (Returned).
    /// @param bankReference For a return, SHA-256 of the returning credit's bank reference; for a
    /// rejection, SHA-256 of the bank's status report (pain.002) message id.
    /// @param reasonCode The bank's ISO 20022 reason code, ASCII, left-aligned (e.g. "AC01").
    struct InstructionOutcome {
        bytes32 instructionId;
        InstructionState outcome;
        bytes32 bankReference;
        bytes32 reasonCode;
    }

    /// @notice The bank's end-of-day statement of a merchant's custody account.
    /// @param merchant The merchant whose custody account the statement is of.
    /// @param businessDay The statement's date, as days since 1970-01-01.
    /// @param statementBalance The statement's closing balance, in fen.
    /// @param statementHash SHA-256 of the raw camt.053 statement file, kept off chain as evidence.
    struct CustodyReconciliation {
        address merchant;
        uint64 businessDay;
        uint128 statementBalance;
        bytes32 statementHash;
    }

    /// @notice The caller may not do this.
    error CustodyDeskUnauthorized(address caller);
    /// @notice The report's feed, subject or payload hash does not match its payload.
    error CustodyDeskReportMismatch(bytes32 expectedPayloadHash, bytes32 gotPayloadHash);
    /// @notice The bank reference was already reported.
    error CustodyDeskDuplicateBankReference(bytes32 bankReference);
    /// @notice An instruction with this id was registered before.
    error CustodyDeskInstructionExists(bytes32 instructionId);
    /// @notice No instruction has this id, or it is not in the state the report needs.
    error CustodyDeskInstructionNotOutstanding(bytes32 instructionId, InstructionState state);
    /// @notice The bank's report does not match the registered instruction.
    error CustodyDeskInstructionMismatch(
        bytes32 instructionId, bytes32 agreementId, IAgreementBook.Payee payee, uint128 amount
    );
    /// @notice The outcome is neither Rejected nor Returned.
    error CustodyDeskInvalidOutcome(InstructionState outcome);
    /// @notice The merchant registry has no merchant at this address.
    error CustodyDeskUnknownMerchant(address merchant);
    /// @notice A custody reconciliation must carry the statement file's hash.
    error CustodyDeskMissingStatementHash(address merchant);
    /// @notice The merchant's custody was already reconciled for `lastReconciledDay`, which is not
    /// before `businessDay`: statements are reconciled once each, in date order.
    error CustodyDeskAlreadyReconciled(address merchant, uint64 lastReconciledDay, uint64 businessDay);
    /// @notice A statement cannot be of a day that had not begun anywhere when its report was
    /// issued (`latestDay`, days since 1970-01-01, allowing a bank at UTC+14): a far-future day
    /// would block every later reconciliation.
    error CustodyDeskBusinessDayInFuture(address merchant, uint64 businessDay, uint64 latestDay);

    /// @notice Emitted when a consumer's payment was confirmed into a merchant's custody account.
    event CustodyDeposited(address indexed merchant, bytes32 indexed agreementId, uint128 amount);
    /// @notice Emitted when a payment out of custody was registered; the bank may now pay it.
    event PaymentInstructed(
        bytes32 indexed instructionId,
        bytes32 indexed agreementId,
        IAgreementBook.Payee indexed payee,
        uint128 amount,
        address merchant
    );
    /// @notice Emitted when the bank confirmed it paid an instruction.
    event PayoutConfirmed(
        bytes32 indexed agreementId,
        bytes32 indexed bankReference,
        IAgreementBook.Payee indexed payee,
        uint128 amount,
        bytes32 instructionId
    );
    /// @notice Emitted when the bank reported it did not pay an instruction: its amount is due
    /// again and not instructed.
    event PaymentRejected(bytes32 indexed instructionId, bytes32 indexed agreementId, bytes32 reasonCode);
    /// @notice Emitted when a paid instruction's money came back into custody; it is due again.
    event PaymentReturned(
        bytes32 indexed instructionId,
        bytes32 indexed agreementId,
        bytes32 indexed bankReference,
        uint128 amount,
        bytes32 reasonCode
    );
    /// @notice Emitted when the bank's end-of-day statement of a merchant's custody account was
    /// compared with the custody the desk holds for the merchant.
    event CustodyReconciled(
        address indexed merchant,
        uint64 indexed businessDay,
        uint128 statementBalance,
        uint128 custodyHeld,
        bytes32 statementHash
    );
    /// @notice Emitted when the statement's closing balance differs from the custody the desk
    /// holds; the merchant's risk tier is raised to at least High.
    event CustodyAnomaly(
        address indexed merchant, uint64 indexed businessDay, uint128 custodyHeld, uint128 statementBalance
    );

    /// @notice The AgreementBook records a confirmed deposit into a merchant's custody account.
    /// @dev Emits {CustodyDeposited}. Requirements: the caller is the AgreementBook; the bank
    /// reference is new (the desk keeps the one register of bank references, credits and debits).
    function deposit(address merchant, bytes32 agreementId, uint128 amount, bytes32 bankReference) external;

    /// @notice Registers a payment out of custody: what is due to the payee and not instructed
    /// yet, up to `instruction.amount`. The bank pays only registered instructions.
    /// @dev Emits {PaymentInstructed} (and, through the book, {IAgreementBook.FundsReleased} for
    /// an upfront share whose cooling-off period just ended: this pass is one of the touches that
    /// release it).
    /// Requirements:
    /// - The caller is an oracle; a valid bank-feed report about the agreement carrying
    ///   keccak256(abi.encode(instruction)).
    /// - The id is new; something is due ({IAgreementBook.claimPayment}).
    function instructPayment(
        PaymentInstruction calldata instruction,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice Records the bank's confirmation that it paid a registered instruction.
    /// @dev Emits {PayoutConfirmed}.
    /// Requirements: the caller is an oracle; a valid bank-feed report about the agreement carrying
    /// keccak256(abi.encode(payout)); the bank reference is new; the instruction is Instructed and
    /// its agreement, payee and amount are the payout's.
    function confirmPayout(PayoutReport calldata payout, IOracleHub.Report calldata report, bytes[] calldata signatures)
        external;

    /// @notice Records the bank's report that it rejected an instruction, or that a paid one came
    /// back: the amount is due again, and not instructed.
    /// @dev Emits {PaymentRejected} or {PaymentReturned}; a return puts the money back in custody.
    /// Requirements: the caller is an oracle; a valid bank-feed report whose subject is the
    /// instruction id, carrying keccak256(abi.encode(outcome)); a rejection needs an Instructed
    /// instruction, a return a Paid one and a new bank reference.
    function reportInstructionOutcome(
        InstructionOutcome calldata outcome,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice Compares the bank's end-of-day statement of a merchant's custody account with the
    /// custody the desk holds for the merchant ({custodyHeld}).
    /// @dev Emits {CustodyReconciled}; when the balances differ also {CustodyAnomaly}, and the
    /// merchant registry records the anomaly, raises the merchant's tier to at least High and
    /// anchors the statement hash (`IMerchantRegistry.flagCustodyAnomaly`). A mismatch is
    /// recorded, never refused: the bank's statement may itself be wrong; the regulator decides.
    /// Requirements:
    /// - The caller is an oracle; the report is a valid bank-feed report whose subject is the
    ///   merchant as bytes32 and whose payload hash is keccak256(abi.encode(reconciliation)).
    /// - The merchant is known to the merchant registry; the statement hash is not zero.
    /// - `businessDay` is after the last day reconciled for the merchant (each statement once, in
    ///   date order: the desk's balance is today's and can only be compared with the latest),
    ///   and not after the day the report was issued (in the bank's time zone, at most UTC+14).
    function reconcileCustody(
        CustodyReconciliation calldata reconciliation,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice The money in `merchant`'s custody account by the chain's books, in fen: every
    /// deposit confirmed minus every payout confirmed plus every return.
    /// @dev Instructed but unpaid money is still in the account; this is what the bank's
    /// statement balance should equal.
    function custodyHeld(address merchant) external view returns (uint128);

    /// @notice The last business day (days since 1970-01-01) the merchant's custody was
    /// reconciled for, 0 if never.
    function lastReconciledDay(address merchant) external view returns (uint64);

    /// @notice The payment instruction `instructionId` (state None if unknown).
    function getInstruction(bytes32 instructionId) external view returns (Instruction memory);

    /// @notice Whether a bank reference (of a credit, a payout or a return) was already reported.
    function isBankReferenceUsed(bytes32 bankReference) external view returns (bool);
}
