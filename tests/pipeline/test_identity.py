"""Resident IDs per GB 11643-1999: reasons, normalisation, pseudonyms, masking, and the CLI."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.identity import (
    PROVINCE_CODES,
    _fast_check_character,
    age_on,
    birth_date_of,
    check_character,
    check_id,
    mask_id,
    person_key,
)
from streams.cli import root

VALID = "11010519491231002X"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("11010519491231002", "length"),
        ("11010519491231002XX", "length"),
        ("1101051949123100AX", "characters"),
        ("11010519491231002Y", "characters"),
        ("９10105194912310021", "characters"),
        ("99010519491231002X", "region"),
        ("110105" + "18991231" + "0021", "birth_date"),
        ("110105" + "19490230" + "0021", "birth_date"),
        ("11010519491231003X", "checksum"),
    ],
)
def test_each_failure_has_its_own_reason(raw: str, reason: str) -> None:
    if reason != "checksum" and reason not in ("length", "characters"):
        raw = raw[:17] + check_character(raw[:17])
    assert check_id(raw) == check_id(raw)
    assert check_id(raw).reason == reason
    assert not check_id(raw).valid


def test_birth_date_in_the_future_is_refused() -> None:
    tomorrow = date.today() + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    assert check_id(first17 + check_character(first17)).reason == "birth_date"


def test_lower_case_x_is_normalised_to_upper() -> None:
    outcome = check_id(VALID.lower())
    assert outcome.valid and outcome.normalised == VALID


def test_pseudonym_is_keyed_hmac_hex_and_stable() -> None:
    key = person_key(b"secret-one", VALID)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == hmac.new(b"secret-one", VALID.encode("ascii"), hashlib.sha256).hexdigest()
    assert key == person_key(b"secret-one", VALID)
    assert key != person_key(b"secret-two", VALID)


def test_mask_shows_first_three_and_last_four() -> None:
    assert mask_id(VALID) == "110***********002X"


def test_age_counts_whole_years() -> None:
    assert age_on(date(2000, 6, 20), date(2022, 6, 19)) == 21
    assert age_on(date(2000, 6, 20), date(2022, 6, 20)) == 22


def test_cli_valid_prints_masked_only() -> None:
    result = CliRunner().invoke(root, ["id", "check", VALID])
    assert result.exit_code == 0
    assert result.output.strip() == "valid 110***********002X"


def test_cli_one_digit_changed_prints_checksum_and_exits_1() -> None:
    result = CliRunner().invoke(root, ["id", "check", "11010519491231003X"])
    assert result.exit_code == 1
    assert result.output.strip() == "invalid checksum"
    assert "11010519491231003X" not in result.output


def _valid_ids() -> st.SearchStrategy[str]:
    born = st.dates(min_value=date(1900, 1, 1), max_value=date.today())
    return st.builds(
        lambda province, rest, when, seq: _with_check(f"{province}{rest:04d}{when:%Y%m%d}{seq:03d}"),
        st.sampled_from(sorted(PROVINCE_CODES)),
        st.integers(0, 9999),
        born,
        st.integers(0, 999),
    )


def _with_check(first17: str) -> str:
    return first17 + check_character(first17)


@given(_valid_ids())
def test_any_well_formed_id_with_its_check_character_validates(raw: str) -> None:
    assert check_id(raw).valid


@given(_valid_ids(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_every_single_character_substitution_is_rejected(raw: str, position: int, replacement: str) -> None:
    if raw[position] == replacement:
        return
    changed = raw[:position] + replacement + raw[position + 1:]
    assert not check_id(changed).valid


@given(st.text("0123456789", min_size=17, max_size=17))
def test_the_base_13_check_character_agrees_with_the_weighted_sum(first17: str) -> None:
    assert _fast_check_character(first17) == check_character(first17)


@given(_valid_ids())
def test_a_valid_id_carries_its_birth_date(raw: str) -> None:
    outcome = check_id(raw)
    assert outcome.born == birth_date_of(outcome.normalised)
