"""`GET /api/persons/{key}/contacts` (admin): an index case's chain, as `epiflow trace` prints it offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.identity import mask_id, person_key
from tests.pipeline.test_contacts import INDEX, NEIGHBOUR, RIDER, RIDER2
from tests.streams.api_helpers import RunningWorker
from tests.streams.contact_site import traced_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningWorker, str]]:
    running, key = traced_site(tmp_path_factory.mktemp("access") / "access.toml")
    try:
        yield running, key
    finally:
        running.stop()


def test_contacts_api_gives_the_chain_to_an_admin(site: tuple[RunningWorker, str]) -> None:
    running, key = site
    status, body = running.call("GET", f"/api/persons/{key}/contacts", token=running.tokens["admin"])
    assert status == 200, body
    secret = running.worker.runtime.settings.secret_bytes
    assert body["index"]["masked_id"] == mask_id(INDEX["id_number"])
    got = {(c["person_key"], c["degree"], c["rule"]) for c in body["contacts"]}
    assert got == {
        (person_key(secret, RIDER["id_number"]), "close", "close-contact-vehicle"),
        (person_key(secret, NEIGHBOUR["id_number"]), "close", "close-contact-place"),
        (person_key(secret, RIDER2["id_number"]), "secondary", "secondary-contact-vehicle"),
    }
    assert INDEX["id_number"] not in str(body)


def test_contacts_api_is_for_admins_only(site: tuple[RunningWorker, str]) -> None:
    running, key = site
    assert running.call("GET", f"/api/persons/{key}/contacts")[0] == 401
    assert running.call("GET", f"/api/persons/{key}/contacts", token=running.tokens["community_a"])[0] == 403


def test_contacts_api_of_someone_not_positive_is_404(site: tuple[RunningWorker, str]) -> None:
    running, _ = site
    secret = running.worker.runtime.settings.secret_bytes
    status, _ = running.call("GET", f"/api/persons/{person_key(secret, RIDER['id_number'])}/contacts",
                             token=running.tokens["admin"])
    assert status == 404
