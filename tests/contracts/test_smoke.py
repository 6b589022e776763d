"""A first plan's life on both backends: the fixtures work and the book keeps its money."""

from chain import messages as m


def test_funded_plan_releases_in_proportion_to_consumption(desk, merchant, consumer, backend):
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    # The book anchors the agreement id (which commits to the document hash) as evidence.
    assert desk.client.lookup_evidence(agreement_id).kind == m.EvidenceKind.AGREEMENT_OPENED
    desk.fund(agreement_id, signed.terms.total_paid)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))

    ledger = desk.client.get_ledger(agreement_id)
    assert ledger.deposited == 100_000
    assert ledger.upfront == 70_000  # 30 % custody on the training template
    assert ledger.released == 30_000 * 2 // 10
    assert ledger.is_conserved()
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE


def test_time_advances_on_each_backend(backend):
    before = backend.w3.eth.get_block("latest")["timestamp"]
    backend.advance_time(86_400)
    assert backend.w3.eth.get_block("latest")["timestamp"] >= before + 86_400
