"""Each input and person-event contract and its msgspec mirror, side by side in `pipeline.events`, keep the same fields."""

from __future__ import annotations

import msgspec
import pytest
from pydantic import BaseModel

from pipeline.events import MIRRORS
from pipeline.inputs import KINDS, InputKind


def _mirror_fields(mirror: type[msgspec.Struct]) -> set[str]:
    """The mirror's field names, with its tag field (`type` of an input, `kind` of a payload) where it has one."""
    info = msgspec.inspect.type_info(mirror)
    names = {f.name for f in info.fields}  # type: ignore[attr-defined]
    tag_field = mirror.__struct_config__.tag_field
    return names | ({tag_field} if tag_field else set())


@pytest.mark.parametrize(("model", "mirror"), MIRRORS, ids=lambda t: t.__name__)
def test_a_mirror_has_the_fields_of_its_contract(model: type[BaseModel], mirror: type[msgspec.Struct]) -> None:
    assert _mirror_fields(mirror) == set(model.model_fields)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_input_kind_pairs_its_contracts_with_their_mirrors(kind: InputKind) -> None:
    assert (kind.model, kind.mirror) in MIRRORS
    assert (kind.payload, kind.payload_mirror) in MIRRORS
    assert kind.mirror.__struct_config__.tag == kind.name
    assert kind.payload_mirror.__struct_config__.tag == kind.name
    assert kind.model.model_fields["type"].annotation.__args__ == (kind.name,)  # type: ignore[union-attr]
    assert kind.time_field in kind.model.model_fields
