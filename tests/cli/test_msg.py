"""``wsp msg encode`` / ``wsp msg decode``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from wsproto_tools.cli.main import cli
from wsproto_tools.cli.status import ExitStatus


def run(*args: str, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["msg", *args], input=stdin)


def test_encode_binary_v2_by_hand() -> None:
    result = run("encode", "--type", "BinaryData", "--data", "6869", "--sequence", "300")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "4042ac026869"


def test_encode_text_v1_by_hand() -> None:
    result = run("encode", "--version", "1", "--type", "textdata", "--text", "hi",
                 "--sequence", "7", "--session", "9", "--timestamp", "5")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        "d1c0" "01" "00" "0101" "0900000000000000" "07000000" "0500000000000000" "02000000"
        "6869"
    )


def test_encode_is_deterministic_and_timestamp_defaults_to_zero() -> None:
    args = ("encode", "--type", "TextData", "--text", "x", "--compress", "--version", "1")
    first, second = run(*args), run(*args)
    assert first.stdout == second.stdout
    wire = bytes.fromhex(first.stdout.strip())
    assert wire[18:26] == bytes(8)  # v1 timestamp field


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(
    ("type_args", "payload"),
    [
        (("--type", "TextData", "--text", "héllo"), {"text": "héllo"}),
        (("--type", "BinaryData", "--data", "00ff"), {"hex": "00ff"}),
        (("--type", "subscribe", "--payload-json", '{"topic": "news", "from_offset": 3}'),
         {"topic": "news", "from_offset": 3}),
        (("--type", "Publish", "--payload-json", '{"topic": "t", "data": "0102"}'),
         {"topic": "t", "data": "0102"}),
        (("--type", "0x0150", "--data", "aa"), {"hex": "aa"}),
    ],
)
def test_encode_then_decode_json(version: str, type_args: tuple[str, ...],
                                 payload: dict[str, object]) -> None:
    encoded = run("encode", "--version", version, *type_args, "--sequence", "42",
                  "--compress", "--ack-requested")
    assert encoded.exit_code == 0, encoded.stderr
    decoded = run("decode", "--json", "-", stdin=encoded.stdout)
    assert decoded.exit_code == 0, decoded.stderr
    obj = json.loads(decoded.stdout)
    assert obj["version"] == int(version)
    assert obj["sequence"] == 42
    assert obj["flags"] == ["COMPRESSED", "ACK_REQUESTED"]
    assert obj["payload"] == payload
    assert isinstance(obj["type_code"], int) and isinstance(obj["type"], str)


def test_decode_raw_stdin() -> None:
    result = run("decode", "--json", "--raw", "-", stdin=bytes.fromhex("4042016869"))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "version": 2, "type": "BinaryData", "type_code": 0x0102, "flags": [], "sequence": 1,
        "session_id": 0, "timestamp": 0, "payload": {"hex": "6869"},
    }


def test_decode_rich_view_lists_every_field() -> None:
    result = run("decode", "74410005" "8080f9c0c1c48203" "6869")
    assert result.exit_code == 0, result.stderr
    for word in ("version", "2", "TextData (0x0101)", "ACK_REQUESTED", "sequence",
                 "session_id", "5", "1700000000000000", "payload.text", "hi"):
        assert word in result.stdout


def test_encrypted_roundtrip_with_key_and_sealed_without() -> None:
    key = "11" * 32
    encoded = run("encode", "--type", "TextData", "--text", "secret", "--key", key,
                  "--nonce", "22" * 12)
    assert encoded.exit_code == 0, encoded.stderr
    with_key = json.loads(run("decode", "--json", "--key", key, encoded.stdout.strip()).stdout)
    assert with_key["payload"] == {"text": "secret"}
    without = json.loads(run("decode", "--json", encoded.stdout.strip()).stdout)
    assert without["payload"]["encrypted"] is True
    assert "ENCRYPTED" in without["flags"]


V1_HEADER_HEX = "d1c0" "01" "00" "0201" + "00" * 8 + "00" * 4 + "00" * 8


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("40420", "odd number of hex digits"),
        ("40zz", "not a hex digit"),
        ("d1c00100", "truncated header: 4 bytes"),
        ("d1c1" + V1_HEADER_HEX[4:] + "00000000", "wrong magic 0xC1D1"),
        (V1_HEADER_HEX + "05000000" + "aabb", "payload_len says 5 bytes but 2 follow"),
        ("400400c1", "bad msgpack"),
        ("40410161ff", "not valid UTF-8"),
        ("00", "first byte 0x00"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(message: str, says: str) -> None:
    result = run("decode", message)
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0]
    assert lines[0].startswith("wsp: error: ")
    if "offset" not in says and "hex" not in says:
        assert "offset" in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("--type", "Subscribe", "--payload-json", "{bad json"),
        ("--type", "Subscribe", "--payload-json", '{"topic": 5}'),
        ("--type", "Subscribe", "--payload-json", '{"topic": "t", "nope": 1}'),
        ("--type", "Subscribe"),
        ("--type", "BinaryData", "--data", "abc"),
        ("--type", "TextData", "--text", "x", "--key", "00"),
        ("--type", "BinaryData", "--data", "00", "--sequence", str(1 << 32)),
        ("--type", "0x10000",),
    ],
)
def test_bad_encode_input_exit_3(args: tuple[str, ...]) -> None:
    result = run("encode", *args)
    assert result.exit_code == ExitStatus.BAD_INPUT, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_usage_errors_exit_2() -> None:
    assert run("encode", "--type", "TextData", "--text", "a", "--data", "00").exit_code == 2
    assert run("encode", "--type", "BinaryData", "--text", "a").exit_code == 2
    assert run("decode", "--raw", "4042").exit_code == 2
    missing = run("encode", "--type", "BinaryData")
    assert missing.exit_code == 2 and "needs --data" in missing.stderr
    unknown = run("encode", "--type", "Nope")
    assert unknown.exit_code == 2 and "unknown message type 'Nope'" in unknown.stderr


def test_unknown_type_names_get_a_suggestion() -> None:
    typo = run("encode", "--type", "TxtData", "--text", "hi")
    assert typo.exit_code == 2
    assert "did you mean TextData?" in typo.stderr


WSP = [sys.executable, "-c", "from wsproto_tools.cli.main import main; main()"]


def test_pipe_between_processes() -> None:
    encode = subprocess.run(
        [*WSP, "msg", "encode", "--type", "Heartbeat", "--payload-json", '{"id": 7}'],
        capture_output=True, text=True, check=False,
    )
    assert encode.returncode == 0, encode.stderr
    decode = subprocess.run(
        [*WSP, "msg", "decode", "--json", "-"],
        input=encode.stdout, capture_output=True, text=True, check=False,
    )
    assert decode.returncode == 0, decode.stderr
    assert json.loads(decode.stdout)["payload"] == {"id": 7, "reply": False}
    bad = subprocess.run([*WSP, "msg", "decode", "d1c0"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == ExitStatus.BAD_INPUT
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_decode_rich_view_lists_batch_items() -> None:
    result = run("decode", "40870005" "4042016869" "05" "4041026f6b")
    assert result.exit_code == 0, result.stderr
    assert "item 0" in result.stdout and "BinaryData (0x0102) seq 1" in result.stdout
    assert "item 1" in result.stdout and '"text": "ok"' in result.stdout


def test_decoded_view_for_people() -> None:
    """No trailing spaces; bytes that are printable text shown as text, with their hex;
    the JSON form keeps hex."""
    shown = run("decode", "4042016869")  # v2 BinaryData b"hi", built by hand
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines and all(line == line.rstrip() for line in lines), lines
    assert any(re.fullmatch(r' payload\.data +"hi" \(hex 6869\)', line) for line in lines), lines
    as_json = run("decode", "--json", "4042016869")
    assert json.loads(as_json.stdout)["payload"] == {"hex": "6869"}
    binary = run("decode", "40420100ff")  # not text: hex only
    assert any(re.fullmatch(r" payload\.data +00ff", line) for line in binary.stdout.splitlines())
