"""A default's two steps played as one, for tests that read both steps' events together."""

from __future__ import annotations

from typing import Any

from chain.client import TxResult
from chain.errors import ContractRevert


def settle_and_distribute(client: Any, key: str, agreement_ids: list[bytes]) -> TxResult:
    """Settle plans of a defaulted merchant and, once all its plans are settled, distribute the
    set-off of the ones just settled (its consumers first, then insurance); one result with the
    events of both steps."""
    settled = client.settle_default(key, agreement_ids)
    merchant = client.get_agreement(agreement_ids[0]).merchant
    _, count, _ = client.set_off_of(merchant)
    if count < client.agreement_count(merchant):
        return settled
    try:
        distributed = client.distribute_set_off(key, merchant, agreement_ids)
    except ContractRevert as refusal:  # distributed before: a retried settlement
        assert refusal.error == "AgreementBookNotAwaitingSetOff", str(refusal)
        return settled
    return TxResult(
        distributed.tx_hash,
        distributed.block_number,
        settled.gas_used + distributed.gas_used,
        settled.events + distributed.events,
    )
