"""Value conversion in isolation (docs/values.md, Python column): _jshost.pack and
_jshost.unpack are what every call uses on its data and its result."""

import array
import collections
import datetime
import decimal
import enum
import fractions
import math
import struct

import pytest

from jshost import _jshost

pack, unpack = _jshost.pack, _jshost.unpack
UTC = datetime.timezone.utc


def roundtrip(v):
    return unpack(pack(v))


# ---- each row, Python → msgpack bytes (exact encoding) ----

@pytest.mark.parametrize("value, encoded", [
    (None, "c0"),
    (True, "c3"),
    (False, "c2"),
    (0, "00"),
    (127, "7f"),
    (-1, "ff"),
    (-32, "e0"),
    (255, "cc ff"),
    (-129, "d1 ff7f"),
    (2**32, "cf 0000000100000000"),
    (2**63 - 1, "cf 7fffffffffffffff"),
    (2**64 - 1, "cf ffffffffffffffff"),
    (-2**63, "d3 8000000000000000"),
    (1.5, "cb 3ff8000000000000"),
    ("", "a0"),
    ("hé", "a3 68c3a9"),
    (b"", "c4 00"),
    (b"\x00\xff", "c4 02 00ff"),
    (bytearray(b"ab"), "c4 02 6162"),
    (memoryview(b"abc"), "c4 03 616263"),
    ([], "90"),
    ([1, "a"], "92 01 a161"),
    ((1, 2), "92 01 02"),
    ({}, "80"),
    ({"a": None}, "81 a161 c0"),
])
def test_pack_encoding(value, encoded):
    assert pack(value).hex() == encoded.replace(" ", "")


@pytest.mark.parametrize("value, encoded", [
    (2**64, "c7 09 01 010000000000000000"),          # ext 1, 9 bytes
    (-2**63 - 1, "c7 09 01 ff7fffffffffffffff"),
    (-2**64, "c7 09 01 ff0000000000000000"),
    (2**71 - 1, "c7 09 01 7fffffffffffffffff"),
    (2**71, "c7 0a 01 00800000000000000000"),        # needs a sign byte
    (-2**71, "c7 09 01 800000000000000000"),
])
def test_pack_bigint_is_twos_complement_big_endian(value, encoded):
    assert pack(value).hex() == encoded.replace(" ", "")


def test_pack_floats_keep_nan_infinities_and_negative_zero():
    assert pack(float("inf")) == b"\xcb" + struct.pack(">d", float("inf"))
    assert pack(-0.0) == b"\xcb" + struct.pack(">d", -0.0)
    assert math.isnan(roundtrip(float("nan")))
    assert math.copysign(1, roundtrip(-0.0)) == -1
    assert roundtrip(float("-inf")) == float("-inf")


# ---- each row both ways ----

@pytest.mark.parametrize("value", [
    None, True, False, 0, 1, -1, 2**31, 2**53 + 1, 2**63, 2**64 - 1, -2**63,
    2**64, -2**63 - 1, 10**40, -10**40, 2**1000 + 7, 3.25, -1e300, "",
    "text", "ünïcødé ☃ 𝄞", "a\x00b", b"", b"\x00\x01\xfe\xff", [],
    [1, [2, [3, []]]], {}, {"a": 1, "b": [True, None], "c": {"d": "e"}},
    {"": 0, "ключ": "значение"},
])
def test_roundtrip_same_value(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_back_as_their_python_types():
    assert roundtrip((1, (2, 3))) == [1, [2, 3]]
    assert roundtrip(bytearray(b"xy")) == b"xy" and type(roundtrip(bytearray(b"xy"))) is bytes
    assert roundtrip(memoryview(b"abc")) == b"abc"
    assert roundtrip(collections.OrderedDict(a=1)) == {"a": 1}
    assert type(roundtrip(collections.OrderedDict(a=1))) is dict


def test_memoryview_of_any_shape_goes_as_its_bytes():
    assert roundtrip(memoryview(b"abcdef")[::2]) == b"ace"
    assert roundtrip(memoryview(array.array("H", [1, 2]))) == array.array("H", [1, 2]).tobytes()


def test_int_subclasses_and_bool_order():
    class Color(enum.IntEnum):
        RED = 3
    assert roundtrip(Color.RED) == 3 and type(roundtrip(Color.RED)) is int
    assert pack(True) == b"\xc3"  # bool is not taken as the int 1


def test_aware_datetimes_go_as_timestamps_and_come_back_utc():
    cases = [
        datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),            # timestamp 32
        datetime.datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),    # timestamp 64
        datetime.datetime(1900, 1, 1, tzinfo=UTC),                      # timestamp 96
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.datetime(1, 1, 1, tzinfo=UTC),
        datetime.datetime(1970, 1, 1, tzinfo=UTC),
    ]
    for dt in cases:
        out = roundtrip(dt)
        assert out == dt
        assert out.tzinfo is UTC
    assert pack(cases[0])[:3] == b"\xd6\xff" + b"\x5e"
    assert pack(cases[1])[:2] == b"\xd7\xff"
    assert pack(cases[2])[:3] == b"\xc7\x0c\xff"


def test_other_timezones_are_converted_to_utc():
    tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    dt = datetime.datetime(2021, 6, 1, 12, 0, tzinfo=tz)
    out = roundtrip(dt)
    assert out == dt
    assert out.tzinfo is UTC
    assert out.hour == 6 and out.minute == 30


def test_naive_datetime_is_taken_as_utc():
    naive = datetime.datetime(2022, 3, 4, 5, 6, 7, 890000)
    assert roundtrip(naive) == naive.replace(tzinfo=UTC)
    assert pack(naive) == pack(naive.replace(tzinfo=UTC))


def test_unpack_timestamp_forms():
    # timestamp 32 = 1 s; 64 with nanoseconds (kept to microseconds); 96 negative
    assert unpack(bytes.fromhex("d6ff00000001")) == datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    ns = (1500 << 34) | 2
    assert unpack(b"\xd7\xff" + ns.to_bytes(8, "big")) == datetime.datetime(1970, 1, 1, 0, 0, 2, 1, tzinfo=UTC)
    neg = b"\xc7\x0c\xff" + (0).to_bytes(4, "big") + (-1).to_bytes(8, "big", signed=True)
    assert unpack(neg) == datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_unpack_float32_and_map_with_int_keys():
    assert unpack(b"\xca" + struct.pack(">f", 0.5)) == 0.5
    assert unpack(bytes.fromhex("81 01 a161".replace(" ", ""))) == {1: "a"}


def test_unpack_bigint_ext():
    assert unpack(bytes.fromhex("c70a0100800000000000000000")) == 2**71
    assert unpack(bytes.fromhex("c70101ff")) == -1


# ---- unsendable values: TypeError naming the type and the path ----

class Thing:
    pass


@pytest.mark.parametrize("value, message", [
    ({"a": [0, 1, 2, {1, 2}]}, "cannot send a value of type set at data['a'][3]"),
    ({"a": {"b": Thing()}}, "cannot send a value of type Thing at data['a']['b']"),
    ([object()], "cannot send a value of type object at data[0]"),
    (frozenset(), "cannot send a value of type frozenset at data"),
    ({"f": len}, "cannot send a value of type builtin_function_or_method at data['f']"),
    ({"x": decimal.Decimal(1)}, "cannot send a value of type decimal.Decimal at data['x']"),
    ([fractions.Fraction(1, 3)], "cannot send a value of type Fraction at data[0]"),
    ([1j], "cannot send a value of type complex at data[0]"),
    ({"d": datetime.date(2020, 1, 1)}, "cannot send a value of type datetime.date at data['d']"),
    ([datetime.timedelta(1)], "cannot send a value of type datetime.timedelta at data[0]"),
    ([datetime.time(1)], "cannot send a value of type datetime.time at data[0]"),
    ({"g": (i for i in [])}, "cannot send a value of type generator at data['g']"),
    ([range(3)], "cannot send a value of type range at data[0]"),
    ({"it's": [Thing]}, "cannot send a value of type type at data[\"it's\"][0]"),
])
def test_unsendable_values(value, message):
    with pytest.raises(TypeError) as e:
        pack(value)
    assert str(e.value) == message


def test_root_name_is_the_callers():
    with pytest.raises(TypeError, match=r"at args\[1\]$"):
        pack([1, {2}], root="args")


def test_non_str_dict_keys():
    for key in (1, 1.5, None, (1, 2), b"a"):
        with pytest.raises(TypeError) as e:
            pack({"outer": [{key: 1}]})
        assert str(e.value) == "dict keys must be str, not %s (key %r) at data['outer'][0]" % (
            type(key).__name__, key)


def test_nesting_limit_is_30():
    v = 0
    for _ in range(30):
        v = [v]
    assert roundtrip(v) == v
    with pytest.raises(ValueError, match="deeper than 30"):
        pack([v])
    d = {}
    for _ in range(31):
        d = {"k": d}
    with pytest.raises(ValueError, match=r"deeper than 30 .* at data\['k'\]"):
        pack(d)


def test_cycles_are_value_errors():
    lst = [1]
    lst.append(lst)
    with pytest.raises(ValueError, match="cycle"):
        pack(lst)
    d = {"a": {}}
    d["a"]["self"] = d
    with pytest.raises(ValueError, match=r"cycle\) at data\['a'\]\['self'\]"):
        pack(d)


def test_lone_surrogate_is_a_value_error_with_path():
    with pytest.raises(ValueError, match=r"lone surrogate .* at data\['s'\]"):
        pack({"s": "a\ud800b"})


def test_tzinfo_that_shrinks_the_list_is_caught():
    victim = []

    class Evil(datetime.tzinfo):
        def utcoffset(self, dt):
            victim.clear()
            return datetime.timedelta(0)

    victim.extend([datetime.datetime(2020, 1, 1, tzinfo=Evil()), 1, 2])
    with pytest.raises(RuntimeError, match="changed size"):
        pack(victim)


def test_unpack_rejects_broken_input():
    with pytest.raises(ValueError):
        unpack(b"")
    with pytest.raises(ValueError):
        unpack(b"\x92\x01")          # truncated array
    with pytest.raises(ValueError):
        unpack(b"\x01\x02")          # two values
    with pytest.raises(ValueError):
        unpack(b"\xd4\x05\x00")      # unknown ext type 5
    # the ext codecs' refusals (proto/ext.h), as the worker has them
    with pytest.raises(ValueError, match="more than 999999999 nanoseconds"):
        unpack(b"\xd7\xff" + ((10**9 << 34) | 1).to_bytes(8, "big"))
    with pytest.raises(ValueError, match="more than 999999999 nanoseconds"):
        unpack(b"\xc7\x0c\xff" + (10**9).to_bytes(4, "big") + bytes(8))
    with pytest.raises(ValueError, match="size other than 4, 8 or 12"):
        unpack(b"\xd5\xff\x00\x00")
    with pytest.raises(ValueError, match="redundant sign byte"):
        unpack(b"\xd5\x01\x00\x05")
    with pytest.raises(ValueError, match="redundant sign byte"):
        unpack(b"\xd5\x01\xff\x80")
    with pytest.raises(UnicodeDecodeError):
        unpack(b"\xa1\xff")          # invalid UTF-8
    with pytest.raises(TypeError):
        unpack(bytes.fromhex("81 91 01 01".replace(" ", "")))  # unhashable key


def test_big_values():
    big = {"k%d" % i: list(range(i % 7)) for i in range(10000)}
    assert roundtrip(big) == big
    blob = bytes(range(256)) * 4096
    assert roundtrip(blob) == blob
    s = "x" * 100000
    assert roundtrip(s) == s


def test_unpack_nesting_limit():
    # 32 containers deep unpack (what msgpack-c's unpacker allowed); 33 do not
    v = unpack(b"\x91" * 32 + b"\xc0")
    for _ in range(32):
        assert isinstance(v, list) and len(v) == 1
        v = v[0]
    assert v is None
    with pytest.raises(ValueError, match="nests too deep"):
        unpack(b"\x91" * 33 + b"\xc0")
    with pytest.raises(ValueError, match="nests too deep"):
        unpack(b"\x81\xa1k" * 33 + b"\xc0")


def test_unpack_refuses_lying_counts_before_allocating():
    # an array or map that claims more items than bytes are left is refused
    # at once (no 32 GiB list is attempted)
    for head in (b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
                 b"\xdc\x00\x03\x01\x02", b"\x83\xa1a\x01\xa1b"):
        with pytest.raises(ValueError, match="malformed or truncated"):
            unpack(head)
    for broken in (b"\xc1", b"\xa5abc", b"\xcd\x01", b"\xc7\x05\x01\x00"):
        with pytest.raises(ValueError, match="malformed or truncated"):
            unpack(broken)


def test_unpack_keys_across_calls():
    # map keys are kept across calls: the same keys, keys that share a slot,
    # keys too long to be kept, non-ASCII keys and non-str keys all come back
    # as they went, call after call
    values = [
        {"k%d" % i: {"i": i, "s": "s%d" % i} for i in range(3000)},
        [{"id": i, "name": "n"} for i in range(300)],
        {"x" * 40 + str(i): i for i in range(50)},
        {"\u00e9t\u00e9": 1, "\u20ac": 2, "\U0001f600": 3, "a\u00e9": 4},
        {"": 0, "a": 1, "ab": 2, "abc": 3, "abcd": 4, "a" * 8: 8,
         "a" * 16: 16, "a" * 17: 17, "a" * 24: 24, "a" * 32: 32, "a" * 33: 33},
    ]
    for _ in range(3):
        for v in values:
            got = unpack(pack(v))
            assert got == v
            assert list(got) == list(v)   # in order
    # keys that are not str pass by the cache
    raw = bytes.fromhex("84 01a161 c0a162 fda163 cb4004000000000000a164"
                        .replace(" ", ""))
    for _ in range(2):
        assert unpack(raw) == {1: "a", None: "b", -3: "c", 2.5: "d"}
    # a key kept from one call is an equal, hashable str in the next
    d = unpack(pack({"shared": 1}))
    e = unpack(pack({"shared": 2}))
    assert list(d)[0] == list(e)[0] == "shared"
    assert {**d, **e} == {"shared": 2}


def test_unpack_strings():
    for s in ["", "a", "x" * 31, "x" * 32, "x" * 1000, "\u00e9" * 20,
              "a\u20ac", "\U0001f600", "ascii then \u00ff", "\x00\x7f"]:
        got = unpack(pack(s))
        assert got == s and type(got) is str
    with pytest.raises(UnicodeDecodeError):
        unpack(b"\xa2\xed\xa0")       # a surrogate, cut short
    with pytest.raises(UnicodeDecodeError):
        unpack(b"\x81\xa2\xc3\x28\x01")  # invalid UTF-8 in a short key


def test_keys_of_small_and_big_maps():
    # Small maps' short ASCII keys come from a cache kept across calls; a big
    # map's keys are made fresh. Both must give the same strs, over and over.
    odd = ["", "k", "é", "ключ", "x" * 32, "y" * 33, "a\x00b"]
    small = {k: i for i, k in enumerate(odd)}
    big = {**{"k%d" % i: i for i in range(100)}, **small}
    for _ in range(3):
        assert roundtrip(small) == small
        assert roundtrip(big) == big
        assert roundtrip([small, big, small]) == [small, big, small]
    # An invalid key is refused whichever way it is made.
    bad_big = b"\xde\x00\x41" + b"".join(
        bytes([0xa2, ord("k"), 0x30 + i % 10]) + b"\x00" for i in range(64)) + b"\xa1\xff\x00"
    with pytest.raises(ValueError):
        unpack(bytes.fromhex("81 a1ff 00".replace(" ", "")))
    with pytest.raises(ValueError):
        unpack(bad_big)
