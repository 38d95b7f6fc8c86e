/**
 * RFC 8949 Appendix A, Table 6: every example, with what this firmware's
 * decoder does with it. Plain data, so the device tests and the host tests
 * (which check the table itself against cbor2) share one copy.
 *
 * - `roundtrip`: decodes, and re-encoding gives the same bytes.
 * - `value`: decodes to the expected number, but re-encodes as an integer:
 *   a number cannot tell 1.0 from 1, and integers are the shorter encoding.
 *   (The DeviceScript VM also has no negative zero: -0.0 decodes to 0.)
 * - `lenient`: a valid but non-preferred encoding: refused by the default
 *   deterministic decoder, accepted with `deterministic: false`.
 * - `refused`: outside the subset (integers beyond 2^53, indefinite lengths);
 *   the decoder must refuse it cleanly.
 */
export interface AppendixAVector {
    /** Diagnostic notation as printed in the RFC. */
    diag: string
    hex: string
    outcome: "roundtrip" | "value" | "lenient" | "refused"
    /** Expected value, for numbers. */
    number?: number
    /** Expected value, for text strings. */
    text?: string
}

export const APPENDIX_A: AppendixAVector[] = [
    { diag: "0", hex: "00", outcome: "roundtrip", number: 0 },
    { diag: "1", hex: "01", outcome: "roundtrip", number: 1 },
    { diag: "10", hex: "0a", outcome: "roundtrip", number: 10 },
    { diag: "23", hex: "17", outcome: "roundtrip", number: 23 },
    { diag: "24", hex: "1818", outcome: "roundtrip", number: 24 },
    { diag: "25", hex: "1819", outcome: "roundtrip", number: 25 },
    { diag: "100", hex: "1864", outcome: "roundtrip", number: 100 },
    { diag: "1000", hex: "1903e8", outcome: "roundtrip", number: 1000 },
    { diag: "1000000", hex: "1a000f4240", outcome: "roundtrip", number: 1000000 },
    { diag: "1000000000000", hex: "1b000000e8d4a51000", outcome: "roundtrip", number: 1000000000000 },
    { diag: "18446744073709551615", hex: "1bffffffffffffffff", outcome: "refused" },
    { diag: "18446744073709551616", hex: "c249010000000000000000", outcome: "roundtrip" },
    { diag: "-18446744073709551616", hex: "3bffffffffffffffff", outcome: "refused" },
    { diag: "-18446744073709551617", hex: "c349010000000000000000", outcome: "roundtrip" },
    { diag: "-1", hex: "20", outcome: "roundtrip", number: -1 },
    { diag: "-10", hex: "29", outcome: "roundtrip", number: -10 },
    { diag: "-100", hex: "3863", outcome: "roundtrip", number: -100 },
    { diag: "-1000", hex: "3903e7", outcome: "roundtrip", number: -1000 },
    { diag: "0.0", hex: "f90000", outcome: "value", number: 0 },
    { diag: "-0.0", hex: "f98000", outcome: "value", number: -0 },
    { diag: "1.0", hex: "f93c00", outcome: "value", number: 1 },
    { diag: "1.1", hex: "fb3ff199999999999a", outcome: "roundtrip", number: 1.1 },
    { diag: "1.5", hex: "f93e00", outcome: "roundtrip", number: 1.5 },
    { diag: "65504.0", hex: "f97bff", outcome: "value", number: 65504 },
    { diag: "100000.0", hex: "fa47c35000", outcome: "value", number: 100000 },
    { diag: "3.4028234663852886e+38", hex: "fa7f7fffff", outcome: "roundtrip", number: 3.4028234663852886e38 },
    { diag: "1.0e+300", hex: "fb7e37e43c8800759c", outcome: "roundtrip", number: 1.0e300 },
    { diag: "5.960464477539063e-8", hex: "f90001", outcome: "roundtrip", number: 5.960464477539063e-8 },
    { diag: "0.00006103515625", hex: "f90400", outcome: "roundtrip", number: 0.00006103515625 },
    { diag: "-4.0", hex: "f9c400", outcome: "value", number: -4 },
    { diag: "-4.1", hex: "fbc010666666666666", outcome: "roundtrip", number: -4.1 },
    { diag: "Infinity", hex: "f97c00", outcome: "roundtrip", number: Infinity },
    { diag: "NaN", hex: "f97e00", outcome: "roundtrip", number: NaN },
    { diag: "-Infinity", hex: "f9fc00", outcome: "roundtrip", number: -Infinity },
    { diag: "Infinity", hex: "fa7f800000", outcome: "lenient", number: Infinity },
    { diag: "NaN", hex: "fa7fc00000", outcome: "lenient", number: NaN },
    { diag: "-Infinity", hex: "faff800000", outcome: "lenient", number: -Infinity },
    { diag: "Infinity", hex: "fb7ff0000000000000", outcome: "lenient", number: Infinity },
    { diag: "NaN", hex: "fb7ff8000000000000", outcome: "lenient", number: NaN },
    { diag: "-Infinity", hex: "fbfff0000000000000", outcome: "lenient", number: -Infinity },
    { diag: "false", hex: "f4", outcome: "roundtrip" },
    { diag: "true", hex: "f5", outcome: "roundtrip" },
    { diag: "null", hex: "f6", outcome: "roundtrip" },
    { diag: "undefined", hex: "f7", outcome: "roundtrip" },
    { diag: "simple(16)", hex: "f0", outcome: "roundtrip" },
    { diag: "simple(255)", hex: "f8ff", outcome: "roundtrip" },
    { diag: '0("2013-03-21T20:04:00Z")', hex: "c074323031332d30332d32315432303a30343a30305a", outcome: "roundtrip" },
    { diag: "1(1363896240)", hex: "c11a514b67b0", outcome: "roundtrip" },
    { diag: "1(1363896240.5)", hex: "c1fb41d452d9ec200000", outcome: "roundtrip" },
    { diag: "23(h'01020304')", hex: "d74401020304", outcome: "roundtrip" },
    { diag: "24(h'6449455446')", hex: "d818456449455446", outcome: "roundtrip" },
    { diag: '32("http://www.example.com")', hex: "d82076687474703a2f2f7777772e6578616d706c652e636f6d", outcome: "roundtrip" },
    { diag: "h''", hex: "40", outcome: "roundtrip" },
    { diag: "h'01020304'", hex: "4401020304", outcome: "roundtrip" },
    { diag: '""', hex: "60", outcome: "roundtrip", text: "" },
    { diag: '"a"', hex: "6161", outcome: "roundtrip", text: "a" },
    { diag: '"IETF"', hex: "6449455446", outcome: "roundtrip", text: "IETF" },
    { diag: '"\\"\\\\"', hex: "62225c", outcome: "roundtrip", text: '"\\' },
    { diag: '"\\u00fc"', hex: "62c3bc", outcome: "roundtrip", text: "\u00fc" },
    { diag: '"\\u6c34"', hex: "63e6b0b4", outcome: "roundtrip", text: "\u6c34" },
    { diag: '"\\ud800\\udd51"', hex: "64f0908591", outcome: "roundtrip", text: "\ud800\udd51" },
    { diag: "[]", hex: "80", outcome: "roundtrip" },
    { diag: "[1, 2, 3]", hex: "83010203", outcome: "roundtrip" },
    { diag: "[1, [2, 3], [4, 5]]", hex: "8301820203820405", outcome: "roundtrip" },
    {
        diag: "[1, 2, 3, ..., 25]",
        hex: "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        outcome: "roundtrip",
    },
    { diag: "{}", hex: "a0", outcome: "roundtrip" },
    { diag: "{1: 2, 3: 4}", hex: "a201020304", outcome: "roundtrip" },
    { diag: '{"a": 1, "b": [2, 3]}', hex: "a26161016162820203", outcome: "roundtrip" },
    { diag: '["a", {"b": "c"}]', hex: "826161a161626163", outcome: "roundtrip" },
    {
        diag: '{"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}',
        hex: "a56161614161626142616361436164614461656145",
        outcome: "roundtrip",
    },
    { diag: "(_ h'0102', h'030405')", hex: "5f42010243030405ff", outcome: "refused" },
    { diag: '(_ "strea", "ming")', hex: "7f657374726561646d696e67ff", outcome: "refused" },
    { diag: "[_ ]", hex: "9fff", outcome: "refused" },
    { diag: "[_ 1, [2, 3], [_ 4, 5]]", hex: "9f018202039f0405ffff", outcome: "refused" },
    { diag: "[_ 1, [2, 3], [4, 5]]", hex: "9f01820203820405ff", outcome: "refused" },
    { diag: "[1, [2, 3], [_ 4, 5]]", hex: "83018202039f0405ff", outcome: "refused" },
    { diag: "[1, [_ 2, 3], [4, 5]]", hex: "83019f0203ff820405", outcome: "refused" },
    {
        diag: "[_ 1, 2, 3, ..., 25]",
        hex: "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
        outcome: "refused",
    },
    { diag: '{_ "a": 1, "b": [_ 2, 3]}', hex: "bf61610161629f0203ffff", outcome: "refused" },
    { diag: '["a", {_ "b": "c"}]', hex: "826161bf61626163ff", outcome: "refused" },
    { diag: '{_ "Fun": true, "Amt": -2}', hex: "bf6346756ef563416d7421ff", outcome: "refused" },
]
