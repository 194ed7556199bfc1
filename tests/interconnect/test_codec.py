"""The T/CEC 102 codec: golden vectors computed with OpenSSL (``openssl enc -aes-128-cbc``,
``openssl dgst -md5 -hmac``), not with our code; round trips over any data; the order of
checks (signature before decryption) and the answer codes; tolerated spellings."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interconnect.codec import (
    CHINA,
    STANDARD,
    CodecError,
    KeyCase,
    Ret,
    Secrets,
    Spelling,
    answer_open,
    answer_seal,
    data_decrypt,
    data_encrypt,
    envelope_read,
    request_open,
    request_seal,
    sign,
    spell_read,
    spell_write,
)

KEY, IV, SIG = "1234567890abcdef", "abcdef1234567890", "sigsecret0123456"
SECRETS = Secrets("MA01H3BQ2", "opsecret", KEY, IV, SIG)
TOKEN_DATA = '{"OperatorID":"MA01H3BQ2","OperatorSecret":"1234567890abcdef"}'
TOKEN_CIPHER = (
    "u53KBt+mtGbhvkC7Wee/Lcrrup4I11V/eNQyPzMZmJK7njHcZtio07nJbctnjZergIQpQ+8g6EGnxBkKfT6QZA=="
)
AT = dt.datetime(2026, 11, 29, 12, 30, tzinfo=CHINA)


def test_encryption_matches_openssl():
    assert data_encrypt(TOKEN_DATA, secret=KEY, iv=IV) == TOKEN_CIPHER
    assert data_encrypt('{"StationName":"南区公交场站"}', secret=KEY, iv=IV) == (
        "YDLVq9RKIfet1EkZW33pTmsQgCdMAWp6b1J3ts/ZwJ6vH3os/LLtJTteRYI6Sa57"
    )
    assert data_decrypt(TOKEN_CIPHER, secret=KEY, iv=IV) == TOKEN_DATA


def test_request_signature_matches_openssl_over_the_fields_in_order():
    envelope = request_seal(
        {"OperatorID": "MA01H3BQ2", "OperatorSecret": "1234567890abcdef"},
        secrets=SECRETS,
        at=AT,
        seq=1,
    )
    assert envelope == {
        "OperatorID": "MA01H3BQ2",
        "Data": TOKEN_CIPHER,
        "TimeStamp": "20261129123000",
        "Seq": "0001",
        "Sig": "D5058C5AB641F088F167856326C8298E",
    }


def test_answer_signature_matches_openssl_ret_msg_data():
    encrypted = TOKEN_CIPHER
    assert sign(SIG, 0, "", encrypted) == "E0AD9EFC6D27B760288153C16E66E730"
    answer = {"Ret": 0, "Msg": "", "Data": encrypted, "Sig": "E0AD9EFC6D27B760288153C16E66E730"}
    assert answer_open(answer, secrets=SECRETS).data == {
        "OperatorID": "MA01H3BQ2",
        "OperatorSecret": "1234567890abcdef",
    }


# The machine is shared: generation may be slow, which says nothing about the codec.
relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@relaxed
@given(
    data=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6),
    seq=st.integers(0, 9999),
)
def test_request_round_trip(data, seq):
    envelope = request_seal(data, secrets=SECRETS, at=AT, seq=seq)
    opened = request_open(envelope_read(envelope), secrets=SECRETS)
    assert opened.data == spell_read(data)
    assert (opened.operator_id, opened.seq, opened.at) == ("MA01H3BQ2", f"{seq:04d}", AT)


@relaxed
@given(
    data=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6),
    ret=st.sampled_from(list(Ret)),
    msg=st.text(max_size=20),
)
def test_answer_round_trip(data, ret, msg):
    opened = answer_open(answer_seal(ret=ret, msg=msg, data=data, secrets=SECRETS), secrets=SECRETS)
    assert (opened.ret, opened.msg, opened.data) == (ret, msg, spell_read(data))


@relaxed
@given(plain=st.text(max_size=200))
def test_encryption_round_trip_any_text(plain):
    assert data_decrypt(data_encrypt(plain, secret=KEY, iv=IV), secret=KEY, iv=IV) == plain


def _sealed(**changes):
    envelope = request_seal({"StationIDs": ["1"]}, secrets=SECRETS, at=AT, seq=7)
    return {**envelope, **changes}


@pytest.mark.parametrize(
    ("envelope", "ret"),
    [
        (_sealed(Sig="0" * 32), Ret.SIGNATURE),
        (_sealed(Data=_sealed()["Data"][:-4] + "AAA="), Ret.SIGNATURE),  # tampered: sig first
        (_sealed(Seq="7"), Ret.ENVELOPE),
        ({k: v for k, v in _sealed().items() if k != "TimeStamp"}, Ret.ENVELOPE),
        (_sealed(OperatorID=5), Ret.ENVELOPE),
    ],
)
def test_rejections(envelope, ret):
    with pytest.raises(CodecError) as caught:
        request_open(envelope, secrets=SECRETS)
    assert caught.value.ret == ret


def test_undecryptable_data_with_a_valid_signature_is_bad_data():
    garbage = "bm90IGFlcw=="  # base64 of "not aes": not whole blocks
    stamp, seq = "20261129123000", "0002"
    envelope = {
        "OperatorID": "MA01H3BQ2",
        "Data": garbage,
        "TimeStamp": stamp,
        "Seq": seq,
        "Sig": sign(SIG, "MA01H3BQ2", garbage, stamp, seq),
    }
    with pytest.raises(CodecError) as caught:
        request_open(envelope, secrets=SECRETS)
    assert caught.value.ret == Ret.DATA


def test_each_direction_has_its_own_secrets():
    push = Secrets("CHARGENET", "x", "fedcba0987654321", "0987654321fedcba", "anothersigsecret")
    envelope = request_seal({"A": 1}, secrets=push, at=AT, seq=1)
    with pytest.raises(CodecError) as caught:
        request_open(envelope, secrets=SECRETS)
    assert caught.value.ret == Ret.SIGNATURE


def test_envelope_keys_any_case_and_lower_case_signature():
    envelope = request_seal({"A": 1}, secrets=SECRETS, at=AT, seq=3)
    odd = {k.lower(): v for k, v in envelope.items()}
    odd["sig"] = odd["sig"].lower()
    assert request_open(envelope_read(odd), secrets=SECRETS).data == {"A": 1}


def test_spellings_read_as_the_standard_and_written_as_the_partner_spells():
    sent = {"policyInfos": [{"startTime": "000000", "ElecPrice": 1, "ServicePrice": 0.8}]}
    assert spell_read(sent) == {
        "PolicyInfos": [{"StartTime": "000000", "ElecPrice": 1, "SevicePrice": 0.8}]
    }
    ours = {"TotalSeviceMoney": 1.5, "ChargeDetails": [{"DetailSeviceMoney": 1.5}]}
    assert spell_write(ours, STANDARD) is ours
    assert spell_write(ours, Spelling(sevice=False, key_case=KeyCase.CAMEL)) == {
        "totalServiceMoney": 1.5,
        "chargeDetails": [{"detailServiceMoney": 1.5}],
    }
    camel = Spelling(sevice=False, key_case=KeyCase.CAMEL)
    envelope = request_seal(ours, secrets=SECRETS, at=AT, seq=4, spelling=camel)
    assert request_open(envelope, secrets=SECRETS).data == ours


def test_hostile_bodies_are_envelope_errors():
    for body in (b"\xff\xfe", b"[1]", b"[" * 100_000 + b"]" * 100_000, b""):
        with pytest.raises(CodecError) as caught:
            envelope_read(body)
        assert caught.value.ret == Ret.ENVELOPE
