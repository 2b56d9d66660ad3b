#!/usr/bin/env python3
"""Regenerates testdata/proton/vectors.json: AMQP 1.0 encodings made by Qpid Proton.

Every vector is {"name", "typed_json", "hex"}: typed_json is the value in the oracle's typed
JSON, hex is what python-qpid-proton's Data codec encodes it to. A vector with
"sequence": true holds several values written back to back (an AMQP message: its sections),
and its typed_json is the list of them.

The encodings come from ../shared/peers/proton-oracle.py (or the command named by
$EVENTHUBS_PROTON_ORACLE), run once for all vectors. Each is checked by having Proton decode it
again and comparing with the input. Usage (from anywhere):

    testdata/proton/generate.py            # rewrite vectors.json
    testdata/proton/generate.py --check    # fail if vectors.json is not what Proton makes now

Only the standard library is used here; the oracle brings its own venv with Proton.
"""
import json
import math
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "vectors.json")


def oracle_command():
    env = os.environ.get("EVENTHUBS_PROTON_ORACLE")
    if env:
        return shlex.split(env)
    for cand in (os.path.join(REPO, "..", "shared", "peers", "proton-oracle.py"),
                 "/work/shared/peers/proton-oracle.py"):
        if os.path.exists(cand):
            return [os.path.abspath(cand)]
    sys.exit("no Proton oracle: set EVENTHUBS_PROTON_ORACLE")


def run_oracle(mode, lines):
    p = subprocess.run(oracle_command() + [mode], input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("oracle %s failed: %s" % (mode, p.stderr))
    return p.stdout.splitlines()


# ---- typed JSON builders ---------------------------------------------------------------

def t(kind, payload):
    return {kind: payload}


def null():
    return {"null": None}


def sym(s):
    return t("symbol", s)


def s(x):
    return t("string", x)


def ul(n):
    return t("ulong", n)


def ui(n):
    return t("uint", n)


def b(x):
    return t("boolean", x)


def lst(*items):
    return t("list", list(items))


def mp(*pairs):
    return t("map", [[k, v] for k, v in pairs])


def desc(d, v):
    return t("described", [d, v])


def arr(kind, items, descriptor=None):
    a = {"type": kind, "items": items}
    if descriptor is not None:
        a["descriptor"] = descriptor
    return t("array", a)


def composite(code, *fields):
    return desc(ul(code), lst(*fields))


# ---- the vectors ---------------------------------------------------------------------

F32_MAX = 3.4028234663852886e38
F32_MIN_NORMAL = 1.1754943508222875e-38
F32_MIN_SUB = 1.401298464324817e-45
F32_TENTH = 0.10000000149011612  # the float nearest 0.1, exactly representable


def primitives():
    v = [("null", null()), ("boolean_true", b(True)), ("boolean_false", b(False))]
    ints = {
        "ubyte": [0, 1, 127, 255],
        "ushort": [0, 1, 255, 256, 65535],
        "uint": [0, 1, 255, 256, 65535, 2**32 - 1],
        "ulong": [0, 1, 255, 256, 2**32, 2**64 - 1],
        "byte": [-128, -1, 0, 1, 127],
        "short": [-32768, -129, -1, 0, 255, 32767],
        "int": [-2**31, -129, -128, -1, 0, 1, 127, 128, 2**31 - 1],
        "long": [-2**63, -2**31 - 1, -129, -128, -1, 0, 127, 128, 2**32, 2**63 - 1],
        "timestamp": [0, 1, -1, 1700000000123, -2**63, 2**63 - 1],
        "decimal32": [0, 0x22500001, 0x80000000, 2**32 - 1],
        "decimal64": [0, 0x2238000000000001, 2**64 - 1],
    }
    for kind, values in ints.items():
        for n in values:
            v.append(("%s_%s" % (kind, str(n).replace("-", "minus_")), t(kind, n)))
    floats = [("zero", 0.0), ("minus_zero", -0.0), ("one_and_half", 1.5), ("minus_2_25", -2.25),
              ("max", F32_MAX), ("min_normal", F32_MIN_NORMAL), ("min_subnormal", F32_MIN_SUB),
              ("tenth", F32_TENTH), ("nan", "NaN"), ("inf", "Infinity"), ("minus_inf", "-Infinity")]
    for name, x in floats:
        v.append(("float_" + name, t("float", x)))
    doubles = [("zero", 0.0), ("minus_zero", -0.0), ("pi", math.pi), ("tenth", 0.1),
               ("max", 1.7976931348623157e308), ("min_subnormal", 5e-324),
               ("nan", "NaN"), ("inf", "Infinity"), ("minus_inf", "-Infinity")]
    for name, x in doubles:
        v.append(("double_" + name, t("double", x)))
    v += [
        ("decimal128_zero", t("decimal128", "00" * 16)),
        ("decimal128_counting", t("decimal128", bytes(range(16)).hex())),
        ("decimal128_ones", t("decimal128", "ff" * 16)),
    ]
    for name, c in [("ascii", "a"), ("nul", "\u0000"), ("latin1", "é"), ("euro", "€"),
                    ("emoji", "\U0001F600"), ("max", "\U0010FFFF")]:
        v.append(("char_" + name, t("char", c)))
    for name, u in [("nil", "00000000-0000-0000-0000-000000000000"),
                    ("v4", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"),
                    ("max", "ffffffff-ffff-ffff-ffff-ffffffffffff")]:
        v.append(("uuid_" + name, t("uuid", u)))
    for n in (0, 1, 255, 256, 1000):
        v.append(("binary_%d" % n, t("binary", bytes(i % 251 for i in range(n)).hex())))
    strings = [("empty", ""), ("hello", "hello"), ("unicode", "héllo wörld ✓ \U0001F600"),
               ("ascii_255", "x" * 255), ("ascii_256", "x" * 256),
               ("two_byte_crossing_255", "x" * 254 + "é"), ("long_1000", "abcdefghij" * 100)]
    for name, x in strings:
        v.append(("string_" + name, s(x)))
    symbols = [("empty", ""), ("accepted", "amqp:accepted:list"),
               ("selector", "apache.org:selector-filter:string"),
               ("ascii_255", "y" * 255), ("ascii_256", "y" * 256)]
    for name, x in symbols:
        v.append(("symbol_" + name, sym(x)))
    return v


def compounds():
    return [
        ("list_empty", lst()),
        ("list_one", lst(ui(1))),
        ("list_mixed", lst(null(), b(True), t("ubyte", 7), s("a"), sym("b"), t("long", -5),
                           t("double", 2.5), t("binary", "0001"))),
        ("list_300_items", lst(*[t("int", i) for i in range(300)])),
        ("list_nested", lst(lst(lst(lst())), mp((s("k"), lst(ui(1)))))),
        ("list_with_long_string", lst(s("z" * 300))),
        ("map_empty", mp()),
        ("map_symbol_keys", mp((sym("a"), ui(1)), (sym("b"), s("two")), (sym("c"), null()))),
        ("map_mixed_keys", mp((s("s"), t("int", 1)), (ul(5), b(False)), (t("int", -1), lst()))),
        ("map_200_pairs", mp(*[(s("key-%d" % i), t("long", i * 1000)) for i in range(200)])),
        ("map_nested", mp((sym("inner"), mp((sym("deeper"), mp()))))),
        ("array_boolean", arr("boolean", [b(True), b(False), b(True)])),
        ("array_ubyte", arr("ubyte", [t("ubyte", 0), t("ubyte", 255)])),
        ("array_ushort", arr("ushort", [t("ushort", 1), t("ushort", 65535)])),
        ("array_uint_small", arr("uint", [ui(0), ui(1), ui(255)])),
        ("array_uint_large", arr("uint", [ui(256), ui(2**32 - 1)])),
        ("array_ulong", arr("ulong", [ul(0), ul(2**64 - 1)])),
        ("array_byte", arr("byte", [t("byte", -128), t("byte", 127)])),
        ("array_short", arr("short", [t("short", -1), t("short", 300)])),
        ("array_int_small", arr("int", [t("int", -1), t("int", 0), t("int", 1)])),
        ("array_int_large", arr("int", [t("int", -2**31), t("int", 2**31 - 1)])),
        ("array_long", arr("long", [t("long", 5), t("long", -2**63)])),
        ("array_float", arr("float", [t("float", 1.5), t("float", "NaN"), t("float", "-Infinity")])),
        ("array_double", arr("double", [t("double", math.e), t("double", -0.0)])),
        ("array_decimal32", arr("decimal32", [t("decimal32", 1), t("decimal32", 2**32 - 1)])),
        ("array_decimal64", arr("decimal64", [t("decimal64", 2**63)])),
        ("array_decimal128", arr("decimal128", [t("decimal128", "0f" * 16)])),
        ("array_char", arr("char", [t("char", "a"), t("char", "\U0001F600")])),
        ("array_timestamp", arr("timestamp", [t("timestamp", 0), t("timestamp", 1700000000123)])),
        ("array_uuid", arr("uuid", [t("uuid", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6")])),
        ("array_binary", arr("binary", [t("binary", ""), t("binary", "ff" * 300)])),
        ("array_string", arr("string", [s("a"), s(""), s("ü")])),
        ("array_symbol_capabilities",
         arr("symbol", [sym("com.microsoft:enable-receiver-runtime-metric"),
                        sym("com.microsoft:geo-replication")])),
        ("array_symbol_long", arr("symbol", [sym("q" * 256)])),
        ("array_empty_int", arr("int", [])),
        ("array_empty_symbol", arr("symbol", [])),
        ("array_300_ubytes", arr("ubyte", [t("ubyte", i % 256) for i in range(300)])),
        ("array_of_lists", arr("list", [lst(), lst(ui(1), s("x"))])),
        ("array_of_maps", arr("map", [mp((sym("k"), ui(1))), mp()])),
        ("array_of_arrays", arr("array", [arr("int", [t("int", 1), t("int", 2)]),
                                          arr("symbol", [sym("a")])])),
        ("array_described_lists", arr("list", [lst(), lst()], descriptor=ul(0x24))),
        ("array_described_symbol_descriptor",
         arr("string", [s("a"), s("b")], descriptor=sym("example:string-type"))),
        ("array_described_empty", arr("uint", [], descriptor=ul(0x0000468C00000004))),
        ("described_accepted", desc(ul(0x24), lst())),
        ("described_symbol_descriptor", desc(sym("amqp:accepted:list"), lst())),
        ("described_large_descriptor",
         desc(ul(0x0000468C00000004), s("amqp.annotation.x-opt-offset > '-1'"))),
        ("described_zero_descriptor", desc(ul(0), null())),
        ("described_nested", desc(ul(1), desc(ul(2), b(True)))),
    ]


SELECTOR = desc(ul(0x0000468C00000004), s("amqp.annotation.x-opt-offset > '-1'"))
# Keep in sync with tests/common/mod.rs `shapes` (the vectors test compares them).
TRANSFER = composite(0x14, ui(0), ui(7), t("binary", "00000007"), ui(0), b(False), b(False),
                     null(), null(), b(False), b(False), b(True))
ATTACH = composite(
    0x12,
    s("receiver-link-1"), ui(1), b(True), null(), t("ubyte", 0),
    composite(0x28, s("myhub/ConsumerGroups/$default/Partitions/0"), null(), null(), null(),
              null(), null(), null(),
              mp((sym("apache.org:selector-filter:string"), SELECTOR))),
    composite(0x29, s("receiver-link-1")),
    null(), null(), null(), ul(1048576), null(),
    arr("symbol", [sym("com.microsoft:enable-receiver-runtime-metric")]),
    mp((sym("com.microsoft:epoch"), t("long", 0))),
)
MESSAGE_ANNOTATIONS = desc(ul(0x72), mp(
    (sym("x-opt-sequence-number"), t("long", 4294967296)),
    (sym("x-opt-offset"), s("8589934592")),
    (sym("x-opt-enqueued-time"), t("timestamp", 1700000000123)),
    (sym("x-opt-partition-key"), s("device-42")),
))
APPLICATION_PROPERTIES = desc(ul(0x74), mp(
    (s("temperature"), t("double", 21.5)),
    (s("unit"), s("celsius")),
    (s("count"), t("int", 3)),
))
DATA = desc(ul(0x75), t("binary", bytes(range(100)).hex()))


def performatives():
    error = composite(0x1d, sym("amqp:link:stolen"),
                      s("New receiver 'r2' with higher epoch of '1' is created"), mp())
    return [
        ("open", composite(0x10, s("eventhubs-rust-1"), s("myns.servicebus.windows.net"),
                           ui(65536), t("ushort", 4999), ui(60000), null(), null(), null(), null(),
                           mp((sym("product"), s("eventhubs")), (sym("version"), s("0.1.0"))))),
        ("begin", composite(0x11, null(), ui(1), ui(5000), ui(5000), ui(262143))),
        ("attach_eventhubs_receiver", ATTACH),
        ("flow", composite(0x13, ui(0), ui(5000), ui(1), ui(5000), ui(1), ui(0), ui(300), null(),
                           b(False), b(False))),
        ("transfer", TRANSFER),
        ("disposition_accepted", composite(0x15, b(True), ui(0), ui(10), b(True),
                                           composite(0x24))),
        ("detach_with_error", composite(0x16, ui(1), b(True), error)),
        ("end", composite(0x17)),
        ("close_with_error", composite(0x18, composite(0x1d, sym("amqp:connection:forced"),
                                                       s("idle timeout")))),
        ("sasl_init_plain", composite(0x41, sym("PLAIN"),
                                      t("binary", b"\x00user\x00secret".hex()),
                                      s("myns.servicebus.windows.net"))),
        ("source_symbolic_descriptor", desc(sym("amqp:source:list"), lst(s("q")))),
        ("section_header", composite(0x70, b(True), t("ubyte", 4), ui(60000))),
        ("section_message_annotations", MESSAGE_ANNOTATIONS),
        ("section_properties", composite(0x73, s("msg-1"), null(), s("myhub"), null(), null(),
                                         t("uuid", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"),
                                         sym("application/json"), null(), null(),
                                         t("timestamp", 1700000000000))),
        ("section_application_properties", APPLICATION_PROPERTIES),
        ("section_data_100_bytes", DATA),
        ("section_amqp_value", desc(ul(0x77), s("hello"))),
        ("section_amqp_sequence", desc(ul(0x76), lst(t("int", 1), t("int", 2)))),
        ("section_footer", desc(ul(0x78), mp((sym("x-opt-checksum"), t("binary", "cafe"))))),
    ]


SEQUENCES = [
    ("eventhubs_event_message", [MESSAGE_ANNOTATIONS, APPLICATION_PROPERTIES, DATA]),
]


def norm(v):
    """Typed JSON with numbers normalised, for comparing what went in with what came out."""
    if isinstance(v, dict):
        if len(v) == 1:
            (k, p), = v.items()
            if k in ("float", "double") and not isinstance(p, str):
                return {k: repr(float(p))}
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def dumps(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def build():
    singles = primitives() + compounds() + performatives()
    names = [n for n, _ in singles] + [n for n, _ in SEQUENCES]
    assert len(names) == len(set(names)), "duplicate vector names"
    inputs = [dumps(v) for _, v in singles]
    for _, parts in SEQUENCES:
        inputs += [dumps(v) for v in parts]
    hexes = run_oracle("enc", inputs)
    assert len(hexes) == len(inputs), "oracle printed %d lines for %d values" % (
        len(hexes), len(inputs))
    vectors, i = [], 0
    for name, v in singles:
        vectors.append({"name": name, "typed_json": v, "hex": hexes[i]})
        i += 1
    for name, parts in SEQUENCES:
        h = "".join(hexes[i:i + len(parts)])
        i += len(parts)
        vectors.append({"name": name, "sequence": True, "typed_json": parts, "hex": h})
    # Proton must read each encoding back as the value that went in.
    back = run_oracle("dec", [x["hex"] for x in vectors])
    k = 0
    for x in vectors:
        want = x["typed_json"] if x.get("sequence") else [x["typed_json"]]
        got = [json.loads(line) for line in back[k:k + len(want)]]
        k += len(want)
        if norm(got) != norm(want):
            sys.exit("Proton does not read %s back:\n want %s\n  got %s" % (
                x["name"], dumps(want), dumps(got)))
    assert k == len(back)
    return vectors


def render(vectors):
    return "[\n" + ",\n".join(dumps(v) for v in vectors) + "\n]\n"


def main(argv):
    text = render(build())
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("%s is stale: run %s" % (OUT, argv[0]))
        print("vectors.json is up to date")
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %d vectors to %s" % (text.count("\n") - 2, OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
