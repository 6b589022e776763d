"""The ISO 20022 messages between Yufu and its custody bank, built and read as plain data.

Four messages cross the wire (decision 0008):

- ``pain.001.001.09``, a customer credit transfer initiation: the oracle instructs the bank to
  pay a release or a refund out of a merchant's custody account;
- ``pain.002.001.12``, the bank's status report on that instruction (``ACCP`` or ``RJCT``);
- ``camt.054.001.08``, a debit or credit notification for bookings on a custody account;
- ``camt.053.001.08``, the end-of-day statement of a custody account.

Every message is checked against ISO 20022's published XSD (shipped by the ``pain001`` and
``camt053`` packages) both when it is built and when it is read, and read with an XML parser
that resolves no entities, loads no DTD and touches no network. Money is integer fen in Python
and a decimal ``CNY`` amount with two decimals in XML; the conversion is exact. Datetimes are
timezone-aware and written in China Standard Time (UTC+08:00), where the bank is.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from importlib.resources import as_file, files

import xmlschema
from lxml import etree

PAIN_001 = "pain.001.001.09"
PAIN_002 = "pain.002.001.12"
CAMT_054 = "camt.054.001.08"
CAMT_053 = "camt.053.001.08"
DOCUMENT_TYPES: tuple[str, ...] = (PAIN_001, PAIN_002, CAMT_054, CAMT_053)
NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"

CURRENCY = "CNY"
# The bank is in China; its timestamps are written in China Standard Time.
CHINA_TIME = timezone(timedelta(hours=8), "UTC+08:00")
# Larger inputs are refused before they are parsed.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

STATUS_ACCEPTED = "ACCP"
STATUS_REJECTED = "RJCT"
PAYMENT_STATUSES: tuple[str, ...] = (STATUS_ACCEPTED, STATUS_REJECTED)

# ISO 20022's placeholder for an identifier the sender does not have.
NOT_PROVIDED = "NOTPROVIDED"
# The longest unstructured remittance line (Max140Text); longer text spans several lines.
REMITTANCE_LINE_LENGTH = 140
# The longest additional-information line of a status reason (Max105Text).
STATUS_INFO_LENGTH = 105

_SCHEMA_FILES: dict[str, tuple[str, str]] = {
    PAIN_001: ("pain001", "templates/pain.001.001.09/pain.001.001.09.xsd"),
    PAIN_002: ("pain001", "pain002/schemas/pain.002.001.12.xsd"),
    CAMT_054: ("camt053", "xsd/camt.054.001.08.xsd"),
    CAMT_053: ("camt053", "xsd/camt.053.001.08.xsd"),
}
_ROOT_ELEMENTS: dict[str, str] = {
    PAIN_001: "CstmrCdtTrfInitn",
    PAIN_002: "CstmrPmtStsRpt",
    CAMT_054: "BkToCstmrDbtCdtNtfctn",
    CAMT_053: "BkToCstmrStmt",
}
_AMOUNT_TEXT = re.compile(r"\+?(\d+(\.\d*)?|\.\d+)")
_DATE_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}:\d{2})?")
_FEN_PER_YUAN = Decimal(100)


class MalformedMessage(ValueError):
    """A message that cannot be built or read; the text says what is wrong and where."""


# ---------------------------------------------------------------- the data


@dataclass(frozen=True)
class Party:
    """A named account holder; ``account`` is the ``<Id><Othr><Id>`` of the account."""

    name: str
    account: str


@dataclass(frozen=True)
class CreditTransfer:
    """One credit transfer of a ``pain.001``: pay ``amount_fen`` from debtor to creditor.

    Yufu sends one transaction per message, and its payment information id is the message id.
    """

    message_id: str
    created_at: datetime
    debtor: Party
    creditor: Party
    amount_fen: int
    end_to_end_id: str
    remittance: str
    requested_date: date


@dataclass(frozen=True)
class PaymentStatus:
    """The bank's answer to a ``pain.001``: ``ACCP``, or ``RJCT`` with a reason code.

    ``additional_info`` is the bank's free-text explanation, if it gave one.
    """

    original_message_id: str
    status: str
    reason: str | None
    end_to_end_id: str | None
    additional_info: str | None = None


@dataclass(frozen=True)
class Entry:
    """One booking on an account, as a notification or a statement reports it.

    ``bank_reference`` is the entry's ``AcctSvcrRef``, unique per booking. ``counterparty`` is
    the debtor of a credit and the creditor of a debit.
    """

    bank_reference: str
    account: str
    credit: bool
    amount_fen: int
    booked_at: datetime
    value_date: date
    end_to_end_id: str | None
    counterparty: Party | None
    remittance: str | None


@dataclass(frozen=True)
class Notification:
    """A ``camt.054``: bookings on one account."""

    message_id: str
    created_at: datetime
    account: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Statement:
    """A ``camt.053``: one account's bookings and balances over one business day.

    A debit balance is a negative number of fen.
    """

    message_id: str
    statement_id: str
    created_at: datetime
    account: str
    business_day: date
    opening_balance_fen: int
    closing_balance_fen: int
    entries: tuple[Entry, ...]


# ---------------------------------------------------------------- amounts and times


def fen_to_amount(fen: int) -> str:
    """The XML amount for ``fen``: ``12345`` becomes ``"123.45"``.

    Raises
    ------
    ValueError
        If ``fen`` is negative (direction is carried by a credit/debit indicator).
    TypeError
        If ``fen`` is not an int.
    """
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"an amount in fen must be an int, not {fen!r}")
    if fen < 0:
        raise ValueError(f"an amount cannot be negative: {fen} fen")
    return str((Decimal(fen) / _FEN_PER_YUAN).quantize(Decimal("0.01")))


def amount_to_fen(text: str) -> int:
    """The fen in an XML amount: ``"123.45"`` becomes ``12345``.

    Raises
    ------
    MalformedMessage
        If ``text`` is not a non-negative decimal or has more than two decimals.
    """
    stripped = text.strip()
    if _AMOUNT_TEXT.fullmatch(stripped) is None:
        raise MalformedMessage(f"amount {text!r} is not a non-negative decimal number")
    try:
        fen = Decimal(stripped) * _FEN_PER_YUAN
    except InvalidOperation as error:
        raise MalformedMessage(f"amount {text!r} is not a decimal number") from error
    if fen != fen.to_integral_value():
        raise MalformedMessage(f"amount {text!r} has more than 2 decimals")
    return int(fen)


def format_datetime(moment: datetime) -> str:
    """``moment`` as an ISO 8601 date-time in China Standard Time (``...+08:00``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no timezone")
    return moment.astimezone(CHINA_TIME).isoformat()


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time; one without an offset is taken as China Standard Time."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise MalformedMessage(f"{text!r} is not an ISO 8601 date-time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA_TIME)
    return moment


def parse_date(text: str) -> date:
    """An ISO 8601 date (an XML date's optional timezone is ignored)."""
    found = _DATE_TEXT.fullmatch(text.strip())
    try:
        if found is None:
            raise ValueError(text)
        return date.fromisoformat(found.group(1))
    except ValueError as error:
        raise MalformedMessage(f"{text!r} is not an ISO 8601 date") from error


# ---------------------------------------------------------------- schemas and parsing

_schemas: dict[str, xmlschema.XMLSchema] = {}
_schemas_lock = threading.Lock()


def schema(document: str) -> xmlschema.XMLSchema:
    """The compiled XSD of ``document`` (one of ``DOCUMENT_TYPES``), compiled once."""
    with _schemas_lock:
        if document not in _schemas:
            package, resource = _SCHEMA_FILES[document]
            with as_file(files(package) / resource) as path:
                _schemas[document] = xmlschema.XMLSchema(str(path))
        return _schemas[document]


def namespace(document: str) -> str:
    """The XML namespace of ``document``: ``urn:iso:std:iso:20022:tech:xsd:`` and its name."""
    return NAMESPACE_PREFIX + document


def _parse_xml(xml: bytes) -> etree._Element:
    """The root of ``xml``, parsed without entities, DTDs or network, or MalformedMessage."""
    if not isinstance(xml, bytes | bytearray):
        raise MalformedMessage(f"a message must be bytes, not {type(xml).__name__}")
    if len(xml) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(xml)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
    # A parser per call: lxml parsers must not be shared between threads.
    parser = etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(bytes(xml), parser)
    except etree.XMLSyntaxError as error:
        raise MalformedMessage(f"not well-formed XML: {error}") from error
    if root is None:
        raise MalformedMessage("not well-formed XML: empty document")
    # ISO 20022 messages never carry a DTD; one here is an entity attack or a wrong file.
    if root.getroottree().docinfo.doctype:
        raise MalformedMessage("a DOCTYPE declaration is not allowed in an ISO 20022 message")
    return root


def _document_type_of(root: etree._Element) -> str:
    name = etree.QName(root)
    uri = name.namespace or ""
    if not uri.startswith(NAMESPACE_PREFIX) or uri[len(NAMESPACE_PREFIX) :] not in DOCUMENT_TYPES:
        raise MalformedMessage(
            f"root element {name.text} is not one of {', '.join(DOCUMENT_TYPES)}"
        )
    if name.localname != "Document":
        raise MalformedMessage(f"root element is {name.localname}, expected Document")
    return uri[len(NAMESPACE_PREFIX) :]


def document_type(xml: bytes) -> str:
    """Which message ``xml`` is, from its root namespace: e.g. ``"camt.054.001.08"``.

    Raises
    ------
    MalformedMessage
        If ``xml`` is not XML or not one of the four messages Yufu speaks.
    """
    return _document_type_of(_parse_xml(xml))


def find_message_id(xml: bytes) -> str | None:
    """The ``GrpHdr/MsgId`` of a message, even one that fails its schema; None if it has none.

    For answering an invalid message with a report that still names it.
    """
    try:
        root = _parse_xml(xml)
    except MalformedMessage:
        return None
    uri = etree.QName(root).namespace
    if not uri or len(root) == 0:
        return None
    found = root[0].find(f"{{{uri}}}GrpHdr/{{{uri}}}MsgId")
    return found.text if found is not None and found.text else None


def _validate(root: etree._Element, document: str) -> None:
    error = next(iter(schema(document).iter_errors(root)), None)
    if error is not None:
        reason = (error.reason or error.message).replace("{" + namespace(document) + "}", "")
        raise MalformedMessage(f"{document} does not match its schema at {error.path}: {reason}")


def _read(xml: bytes, document: str) -> _Reader:
    root = _parse_xml(xml)
    found = _document_type_of(root)
    if found != document:
        raise MalformedMessage(f"expected a {document} message, got {found}")
    _validate(root, document)
    return _Reader(root, document)


def _serialize(root: etree._Element, document: str) -> bytes:
    _validate(root, document)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


class _Reader:
    """Finds elements of one validated message by slash-separated local names."""

    def __init__(self, root: etree._Element, document: str) -> None:
        self.document = document
        self.namespace = namespace(document)
        self.body = root[0]

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.namespace}}}{step}" for step in path.split("/"))

    def find(self, element: etree._Element, path: str) -> etree._Element | None:
        return element.find(self._path(path))

    def findall(self, element: etree._Element, path: str) -> list[etree._Element]:
        return list(element.iterfind(self._path(path)))

    def where(self, element: etree._Element) -> str:
        steps = [etree.QName(node).localname for node in (element, *element.iterancestors())]
        return "/" + "/".join(reversed(steps))

    def fail(self, element: etree._Element, problem: str) -> MalformedMessage:
        return MalformedMessage(f"{self.document} at {self.where(element)}: {problem}")

    def optional_text(self, element: etree._Element, path: str) -> str | None:
        found = self.find(element, path)
        return None if found is None else (found.text or "")

    def text(self, element: etree._Element, path: str) -> str:
        found = self.optional_text(element, path)
        if found is None:
            raise self.fail(element, f"{path} is missing")
        return found

    def one(self, element: etree._Element, path: str) -> etree._Element:
        found = self.findall(element, path)
        if len(found) != 1:
            raise self.fail(element, f"expected exactly one {path}, found {len(found)}")
        return found[0]

    def amount(self, element: etree._Element, path: str) -> int:
        found = self.find(element, path)
        if found is None:
            raise self.fail(element, f"{path} is missing")
        currency = found.get("Ccy")
        if currency != CURRENCY:
            raise self.fail(found, f"currency {currency} is not {CURRENCY}")
        try:
            return amount_to_fen(found.text or "")
        except MalformedMessage as error:
            raise self.fail(found, str(error)) from error

    def positive_amount(self, element: etree._Element, path: str) -> int:
        fen = self.amount(element, path)
        if fen <= 0:
            raise self.fail(element, f"{path} must be positive, got {fen_to_amount(fen)}")
        return fen

    def currency(self, account: etree._Element) -> None:
        """Refuse an account denominated in another currency."""
        currency = self.optional_text(account, "Ccy")
        if currency is not None and currency != CURRENCY:
            raise self.fail(account, f"account currency {currency} is not {CURRENCY}")

    def account(self, element: etree._Element, path: str) -> str:
        account = self.find(element, path)
        if account is None:
            raise self.fail(element, f"{path} is missing")
        self.currency(account)
        found = self.optional_text(account, "Id/Othr/Id")
        if found is None:
            raise self.fail(account, "the account must be identified by Id/Othr/Id")
        return found

    def moment(self, element: etree._Element, path: str) -> datetime:
        try:
            return parse_datetime(self.text(element, path))
        except MalformedMessage as error:
            raise self.fail(element, f"{path}: {error}") from error

    def date_choice(self, element: etree._Element, path: str) -> date:
        """The date of a DateAndDateTime2Choice (a date-time counts in China time)."""
        choice = self.find(element, path)
        if choice is None:
            raise self.fail(element, f"{path} is missing")
        day = self.optional_text(choice, "Dt")
        try:
            if day is not None:
                return parse_date(day)
            return parse_datetime(self.text(choice, "DtTm")).astimezone(CHINA_TIME).date()
        except MalformedMessage as error:
            raise self.fail(choice, str(error)) from error

    def datetime_choice(self, element: etree._Element, path: str) -> datetime:
        """The moment of a DateAndDateTime2Choice (a bare date is its midnight in China)."""
        choice = self.find(element, path)
        if choice is None:
            raise self.fail(element, f"{path} is missing")
        moment = self.optional_text(choice, "DtTm")
        try:
            if moment is not None:
                return parse_datetime(moment)
            return datetime.combine(parse_date(self.text(choice, "Dt")), time(), CHINA_TIME)
        except MalformedMessage as error:
            raise self.fail(choice, str(error)) from error

    def remittance(self, element: etree._Element) -> str | None:
        lines = self.findall(element, "RmtInf/Ustrd")
        if not lines:
            return None
        return "".join(line.text or "" for line in lines)


class _Builder:
    """Adds elements in one message's namespace; text XML cannot hold is MalformedMessage."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.namespace = namespace(document)
        self.root = etree.Element(f"{{{self.namespace}}}Document", nsmap={None: self.namespace})

    def add(
        self, parent: etree._Element, tag: str, text: str | None = None, **attributes: str
    ) -> etree._Element:
        element = etree.SubElement(parent, f"{{{self.namespace}}}{tag}", attributes)
        if text is not None:
            try:
                element.text = text
            except ValueError as error:
                raise MalformedMessage(
                    f"{self.document}: {tag} {text!r} holds characters XML cannot carry"
                ) from error
        return element

    def amount(self, parent: etree._Element, tag: str, fen: int) -> etree._Element:
        return self.add(parent, tag, fen_to_amount(fen), Ccy=CURRENCY)

    def account(self, parent: etree._Element, tag: str, account: str) -> etree._Element:
        element = self.add(parent, tag)
        self.add(self.add(self.add(element, "Id"), "Othr"), "Id", account)
        self.add(element, "Ccy", CURRENCY)
        return element

    def remittance(self, parent: etree._Element, text: str) -> None:
        information = self.add(parent, "RmtInf")
        for start in range(0, len(text), REMITTANCE_LINE_LENGTH):
            self.add(information, "Ustrd", text[start : start + REMITTANCE_LINE_LENGTH])

    def serialize(self) -> bytes:
        return _serialize(self.root, self.document)


# ---------------------------------------------------------------- pain.001


def build_pain001(transfer: CreditTransfer) -> bytes:
    """The ``pain.001.001.09`` carrying ``transfer`` alone, checked against the XSD.

    Raises
    ------
    MalformedMessage
        If the message would not match the schema (an identifier too long, an empty name...).
    ValueError
        If the amount is not positive or ``created_at`` has no timezone.
    """
    if transfer.amount_fen <= 0:
        raise ValueError(f"a credit transfer must be positive, got {transfer.amount_fen} fen")
    builder = _Builder(PAIN_001)
    initiation = builder.add(builder.root, "CstmrCdtTrfInitn")
    header = builder.add(initiation, "GrpHdr")
    builder.add(header, "MsgId", transfer.message_id)
    builder.add(header, "CreDtTm", format_datetime(transfer.created_at))
    builder.add(header, "NbOfTxs", "1")
    builder.add(header, "CtrlSum", fen_to_amount(transfer.amount_fen))
    builder.add(builder.add(header, "InitgPty"), "Nm", transfer.debtor.name)

    payment = builder.add(initiation, "PmtInf")
    builder.add(payment, "PmtInfId", transfer.message_id)
    builder.add(payment, "PmtMtd", "TRF")
    builder.add(payment, "NbOfTxs", "1")
    builder.add(payment, "CtrlSum", fen_to_amount(transfer.amount_fen))
    builder.add(builder.add(payment, "ReqdExctnDt"), "Dt", transfer.requested_date.isoformat())
    builder.add(builder.add(payment, "Dbtr"), "Nm", transfer.debtor.name)
    builder.account(payment, "DbtrAcct", transfer.debtor.account)
    agent = builder.add(builder.add(payment, "DbtrAgt"), "FinInstnId")
    builder.add(builder.add(agent, "Othr"), "Id", NOT_PROVIDED)

    transaction = builder.add(payment, "CdtTrfTxInf")
    builder.add(builder.add(transaction, "PmtId"), "EndToEndId", transfer.end_to_end_id)
    builder.amount(builder.add(transaction, "Amt"), "InstdAmt", transfer.amount_fen)
    builder.add(builder.add(transaction, "Cdtr"), "Nm", transfer.creditor.name)
    builder.account(transaction, "CdtrAcct", transfer.creditor.account)
    if transfer.remittance:
        builder.remittance(transaction, transfer.remittance)
    return builder.serialize()


def parse_pain001(xml: bytes) -> list[CreditTransfer]:
    """Every credit transfer in a ``pain.001.001.09``, in document order.

    Raises
    ------
    MalformedMessage
        If the message is not well-formed, does not match the schema, is not in CNY, names
        an account other than by ``Othr/Id``, lacks a creditor, or its transaction counts or
        control sums disagree with its transactions.
    """
    reader = _read(xml, PAIN_001)
    header = reader.one(reader.body, "GrpHdr")
    message_id = reader.text(header, "MsgId")
    created_at = reader.moment(header, "CreDtTm")
    transfers: list[CreditTransfer] = []
    for payment in reader.findall(reader.body, "PmtInf"):
        if reader.text(payment, "PmtMtd") != "TRF":
            raise reader.fail(payment, "only credit transfers (PmtMtd TRF) are accepted")
        debtor = Party(
            reader.optional_text(payment, "Dbtr/Nm") or "", reader.account(payment, "DbtrAcct")
        )
        requested_date = reader.date_choice(payment, "ReqdExctnDt")
        in_payment: list[CreditTransfer] = []
        for transaction in reader.findall(payment, "CdtTrfTxInf"):
            if reader.find(transaction, "Cdtr") is None:
                raise reader.fail(transaction, "Cdtr is missing")
            creditor = Party(
                reader.optional_text(transaction, "Cdtr/Nm") or "",
                reader.account(transaction, "CdtrAcct"),
            )
            if reader.find(transaction, "Amt/InstdAmt") is None:
                raise reader.fail(
                    transaction, "only an instructed amount (Amt/InstdAmt) is accepted"
                )
            in_payment.append(
                CreditTransfer(
                    message_id=message_id,
                    created_at=created_at,
                    debtor=debtor,
                    creditor=creditor,
                    amount_fen=reader.positive_amount(transaction, "Amt/InstdAmt"),
                    end_to_end_id=reader.text(transaction, "PmtId/EndToEndId"),
                    remittance=reader.remittance(transaction) or "",
                    requested_date=requested_date,
                )
            )
        _check_totals(reader, payment, in_payment)
        transfers.extend(in_payment)
    _check_totals(reader, header, transfers)
    return transfers


def _check_totals(
    reader: _Reader, element: etree._Element, transfers: list[CreditTransfer]
) -> None:
    """Refuse a NbOfTxs or CtrlSum that disagrees with the transactions it summarises."""
    count = reader.optional_text(element, "NbOfTxs")
    if count is not None and int(count) != len(transfers):
        raise reader.fail(
            element, f"NbOfTxs is {count} but there are {len(transfers)} transactions"
        )
    control_sum = reader.optional_text(element, "CtrlSum")
    total = sum(transfer.amount_fen for transfer in transfers)
    if control_sum is not None and Decimal(control_sum) * _FEN_PER_YUAN != total:
        raise reader.fail(
            element,
            f"CtrlSum is {control_sum} but the transactions add up to {fen_to_amount(total)}",
        )


# ---------------------------------------------------------------- pain.002


def build_pain002(status: PaymentStatus, message_id: str, created_at: datetime) -> bytes:
    """The ``pain.002.001.12`` reporting ``status``, as message ``message_id``.

    The status is reported for the whole message and, when ``end_to_end_id`` is known, for
    its transaction (whose payment information id is the original message id).
    """
    if status.status not in PAYMENT_STATUSES:
        raise ValueError(f"payment status {status.status!r} is not one of {PAYMENT_STATUSES}")
    builder = _Builder(PAIN_002)
    report = builder.add(builder.root, "CstmrPmtStsRpt")
    header = builder.add(report, "GrpHdr")
    builder.add(header, "MsgId", message_id)
    builder.add(header, "CreDtTm", format_datetime(created_at))
    group = builder.add(report, "OrgnlGrpInfAndSts")
    builder.add(group, "OrgnlMsgId", status.original_message_id)
    builder.add(group, "OrgnlMsgNmId", PAIN_001)
    builder.add(group, "GrpSts", status.status)
    _add_status_reason(builder, group, status)
    if status.end_to_end_id is not None:
        payment = builder.add(report, "OrgnlPmtInfAndSts")
        builder.add(payment, "OrgnlPmtInfId", status.original_message_id)
        transaction = builder.add(payment, "TxInfAndSts")
        builder.add(transaction, "OrgnlEndToEndId", status.end_to_end_id)
        builder.add(transaction, "TxSts", status.status)
        _add_status_reason(builder, transaction, status)
    return builder.serialize()


def _add_status_reason(builder: _Builder, parent: etree._Element, status: PaymentStatus) -> None:
    if status.reason is None and not status.additional_info:
        return
    reason = builder.add(parent, "StsRsnInf")
    if status.reason is not None:
        builder.add(builder.add(reason, "Rsn"), "Cd", status.reason)
    info = status.additional_info or ""
    for start in range(0, len(info), STATUS_INFO_LENGTH):
        builder.add(reason, "AddtlInf", info[start : start + STATUS_INFO_LENGTH])


def parse_pain002(xml: bytes) -> PaymentStatus:
    """The status a ``pain.002.001.12`` reports for the one message it answers.

    Raises
    ------
    MalformedMessage
        If the message is invalid or reports a status other than ``ACCP`` or ``RJCT``.
    """
    reader = _read(xml, PAIN_002)
    group = reader.one(reader.body, "OrgnlGrpInfAndSts")
    transactions = reader.findall(reader.body, "OrgnlPmtInfAndSts/TxInfAndSts")
    status = reader.optional_text(group, "GrpSts")
    if status is None and transactions:
        status = reader.optional_text(transactions[0], "TxSts")
    if status not in PAYMENT_STATUSES:
        raise reader.fail(group, f"status {status!r} is not one of {', '.join(PAYMENT_STATUSES)}")
    reasons = reader.findall(group, "StsRsnInf")
    if not reasons and transactions:
        reasons = reader.findall(transactions[0], "StsRsnInf")
    reason = None if not reasons else reader.optional_text(reasons[0], "Rsn/Cd")
    info = (
        "".join(line.text or "" for line in reader.findall(reasons[0], "AddtlInf"))
        if reasons
        else ""
    )
    return PaymentStatus(
        original_message_id=reader.text(group, "OrgnlMsgId"),
        status=status,
        reason=reason,
        end_to_end_id=reader.optional_text(transactions[0], "OrgnlEndToEndId")
        if transactions
        else None,
        additional_info=info or None,
    )


# ---------------------------------------------------------------- camt.054 and camt.053


def _add_entry(builder: _Builder, parent: etree._Element, entry: Entry, account: str) -> None:
    if entry.account != account:
        raise MalformedMessage(
            f"entry {entry.bank_reference} is on account {entry.account}, not {account}"
        )
    if entry.amount_fen <= 0:
        raise ValueError(f"entry {entry.bank_reference} must be positive, got {entry.amount_fen}")
    indicator = "CRDT" if entry.credit else "DBIT"
    element = builder.add(parent, "Ntry")
    builder.amount(element, "Amt", entry.amount_fen)
    builder.add(element, "CdtDbtInd", indicator)
    builder.add(builder.add(element, "Sts"), "Cd", "BOOK")
    builder.add(builder.add(element, "BookgDt"), "DtTm", format_datetime(entry.booked_at))
    builder.add(builder.add(element, "ValDt"), "Dt", entry.value_date.isoformat())
    builder.add(element, "AcctSvcrRef", entry.bank_reference)
    # Domestic credit transfer, received (a consumer's payment) or issued (a payout).
    domain = builder.add(builder.add(element, "BkTxCd"), "Domn")
    builder.add(domain, "Cd", "PMNT")
    family = builder.add(domain, "Fmly")
    builder.add(family, "Cd", "RCDT" if entry.credit else "ICDT")
    builder.add(family, "SubFmlyCd", "DMCT")
    if entry.end_to_end_id is None and entry.counterparty is None and not entry.remittance:
        return
    details = builder.add(builder.add(element, "NtryDtls"), "TxDtls")
    if entry.end_to_end_id is not None:
        builder.add(builder.add(details, "Refs"), "EndToEndId", entry.end_to_end_id)
    if entry.counterparty is not None:
        role = "Dbtr" if entry.credit else "Cdtr"
        parties = builder.add(details, "RltdPties")
        party = builder.add(builder.add(parties, role), "Pty")
        if entry.counterparty.name:
            builder.add(party, "Nm", entry.counterparty.name)
        if entry.counterparty.account:
            builder.account(parties, role + "Acct", entry.counterparty.account)
    if entry.remittance:
        builder.remittance(details, entry.remittance)


def _read_entry(reader: _Reader, element: etree._Element, account: str) -> Entry:
    indicator = reader.text(element, "CdtDbtInd")
    status = reader.optional_text(element, "Sts/Cd") or reader.optional_text(element, "Sts/Prtry")
    if status != "BOOK":
        raise reader.fail(element, f"entry status {status} is not BOOK")
    bank_reference = reader.optional_text(element, "AcctSvcrRef")
    if not bank_reference:
        raise reader.fail(element, "AcctSvcrRef (the bank reference) is missing")
    amount_fen = reader.positive_amount(element, "Amt")
    details = reader.findall(element, "NtryDtls/TxDtls")
    if len(details) > 1:
        raise reader.fail(element, f"one transaction per entry expected, found {len(details)}")
    end_to_end_id = counterparty = remittance = None
    if details:
        transaction = details[0]
        if reader.find(transaction, "Amt") is not None:
            detail_fen = reader.amount(transaction, "Amt")
            if detail_fen != amount_fen:
                raise reader.fail(
                    transaction, f"amount {detail_fen} differs from the entry's {amount_fen}"
                )
        end_to_end_id = reader.optional_text(transaction, "Refs/EndToEndId")
        if end_to_end_id == NOT_PROVIDED:
            end_to_end_id = None
        role = "Dbtr" if indicator == "CRDT" else "Cdtr"
        name = reader.optional_text(transaction, f"RltdPties/{role}/Pty/Nm")
        has_party = reader.find(transaction, f"RltdPties/{role}") is not None
        has_account = reader.find(transaction, f"RltdPties/{role}Acct") is not None
        if has_party or has_account:
            counterparty = Party(
                name or "",
                reader.account(transaction, f"RltdPties/{role}Acct") if has_account else "",
            )
        remittance = reader.remittance(transaction)
    return Entry(
        bank_reference=bank_reference,
        account=account,
        credit=indicator == "CRDT",
        amount_fen=amount_fen,
        booked_at=reader.datetime_choice(element, "BookgDt"),
        value_date=reader.date_choice(element, "ValDt"),
        end_to_end_id=end_to_end_id,
        counterparty=counterparty,
        remittance=remittance,
    )


def build_camt054(notification: Notification) -> bytes:
    """The ``camt.054.001.08`` reporting ``notification``'s entries on its one account."""
    builder = _Builder(CAMT_054)
    body = builder.add(builder.root, "BkToCstmrDbtCdtNtfctn")
    header = builder.add(body, "GrpHdr")
    builder.add(header, "MsgId", notification.message_id)
    builder.add(header, "CreDtTm", format_datetime(notification.created_at))
    report = builder.add(body, "Ntfctn")
    builder.add(report, "Id", notification.message_id)
    builder.add(report, "CreDtTm", format_datetime(notification.created_at))
    builder.account(report, "Acct", notification.account)
    for entry in notification.entries:
        _add_entry(builder, report, entry, notification.account)
    return builder.serialize()


def parse_camt054(xml: bytes) -> Notification:
    """The notification in a ``camt.054.001.08`` (exactly one account, booked CNY entries)."""
    reader = _read(xml, CAMT_054)
    header = reader.one(reader.body, "GrpHdr")
    report = reader.one(reader.body, "Ntfctn")
    account = reader.account(report, "Acct")
    return Notification(
        message_id=reader.text(header, "MsgId"),
        created_at=reader.moment(header, "CreDtTm"),
        account=account,
        entries=tuple(
            _read_entry(reader, entry, account) for entry in reader.findall(report, "Ntry")
        ),
    )


def _add_balance(builder: _Builder, parent: etree._Element, code: str, fen: int, day: date) -> None:
    balance = builder.add(parent, "Bal")
    builder.add(builder.add(builder.add(balance, "Tp"), "CdOrPrtry"), "Cd", code)
    builder.amount(balance, "Amt", abs(fen))
    builder.add(balance, "CdtDbtInd", "CRDT" if fen >= 0 else "DBIT")
    builder.add(builder.add(balance, "Dt"), "Dt", day.isoformat())


def build_camt053(statement: Statement) -> bytes:
    """The ``camt.053.001.08`` for ``statement``: balances OPBD and CLBD, then the entries."""
    builder = _Builder(CAMT_053)
    body = builder.add(builder.root, "BkToCstmrStmt")
    header = builder.add(body, "GrpHdr")
    builder.add(header, "MsgId", statement.message_id)
    builder.add(header, "CreDtTm", format_datetime(statement.created_at))
    report = builder.add(body, "Stmt")
    builder.add(report, "Id", statement.statement_id)
    builder.add(report, "CreDtTm", format_datetime(statement.created_at))
    period = builder.add(report, "FrToDt")
    day_start = datetime.combine(statement.business_day, time(), CHINA_TIME)
    builder.add(period, "FrDtTm", format_datetime(day_start))
    builder.add(period, "ToDtTm", format_datetime(day_start + timedelta(days=1, seconds=-1)))
    builder.account(report, "Acct", statement.account)
    _add_balance(builder, report, "OPBD", statement.opening_balance_fen, statement.business_day)
    _add_balance(builder, report, "CLBD", statement.closing_balance_fen, statement.business_day)
    for entry in statement.entries:
        _add_entry(builder, report, entry, statement.account)
    return builder.serialize()


def _read_balance(reader: _Reader, report: etree._Element, code: str) -> tuple[int, date]:
    found = [
        balance
        for balance in reader.findall(report, "Bal")
        if reader.optional_text(balance, "Tp/CdOrPrtry/Cd") == code
    ]
    if len(found) != 1:
        raise reader.fail(report, f"expected exactly one {code} balance, found {len(found)}")
    fen = reader.amount(found[0], "Amt")
    sign = -1 if reader.text(found[0], "CdtDbtInd") == "DBIT" else 1
    return sign * fen, reader.date_choice(found[0], "Dt")


def parse_camt053(xml: bytes) -> Statement:
    """The statement in a ``camt.053.001.08`` (exactly one account, OPBD and CLBD balances).

    The business day is the date of the closing balance.
    """
    reader = _read(xml, CAMT_053)
    header = reader.one(reader.body, "GrpHdr")
    report = reader.one(reader.body, "Stmt")
    account = reader.account(report, "Acct")
    opening_fen, _ = _read_balance(reader, report, "OPBD")
    closing_fen, business_day = _read_balance(reader, report, "CLBD")
    return Statement(
        message_id=reader.text(header, "MsgId"),
        statement_id=reader.text(report, "Id"),
        created_at=reader.moment(header, "CreDtTm"),
        account=account,
        business_day=business_day,
        opening_balance_fen=opening_fen,
        closing_balance_fen=closing_fen,
        entries=tuple(
            _read_entry(reader, entry, account) for entry in reader.findall(report, "Ntry")
        ),
    )
