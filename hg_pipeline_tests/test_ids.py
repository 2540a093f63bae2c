import uuid

from hg_pipeline import ids


def test_record_id_is_the_uuid5_of_tenant_entity_and_psa_id():
    for parts in (("acme", "companies", "1"), ("globex-2", "contacts", "0012"), ("t", "assets", "é")):
        assert ids.record_id(*parts) == str(uuid.uuid5(ids._NAMESPACE, "|".join(parts)))
    assert ids.record_id("acme", "companies", "1") != ids.record_id("globex", "companies", "1")
