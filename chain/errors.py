"""Exceptions raised by the chain package, all under one root, `ChainError`."""


class ChainError(Exception):
    """Root of every error the chain package raises."""


class CompilationError(ChainError):
    """The Solidity sources could not be compiled; the message carries solc's diagnostics."""


class ContractRevert(ChainError):
    """A contract refused a call or transaction with one of its custom errors.

    Attributes
    ----------
    error
        The custom error's name, e.g. ``"AgreementBookSequenceMismatch"``.
    args_
        Its decoded arguments, in declaration order.
    """

    def __init__(self, error: str, args_: tuple[object, ...], data: bytes) -> None:
        shown = ", ".join(_show(value) for value in args_)
        super().__init__(f"{error}({shown})")
        self.error = error
        self.args_ = args_
        self.data = data


class UnknownRevert(ChainError):
    """A call reverted with data that is no Yufu custom error (a panic, a plain revert)."""

    def __init__(self, message: str, data: bytes | None = None) -> None:
        super().__init__(message)
        self.data = data


class TransactionFailed(ChainError):
    """A transaction was mined but failed, and its revert reason could not be replayed."""


def _show(value: object) -> str:
    if isinstance(value, bytes):
        text = value.rstrip(b"\0")
        # Errors name the offending term with a left-aligned ASCII bytes32; show it as text.
        if len(value) == 32 and text and text.isascii() and text.decode().isidentifier():
            return repr(text.decode())
        return "0x" + value.hex()
    return repr(value)
