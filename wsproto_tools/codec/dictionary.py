"""The wsp preset compression dictionary (docs/protocol.md, "Compression").

Strings that recur in small wsp messages: the msgpack keys of the payload
schemas and common JSON/text fragments. Most frequent material comes last,
because DEFLATE reaches recent history with shorter distances.
"""

from __future__ import annotations

__all__ = ["DICTIONARY"]

DICTIONARY: bytes = (
    b'{"type":"event","data":{"id":"user","name":"message","text":"hello",'
    b'"status":"ok","error":null,"result":true,"value":false,"count":0,'
    b'"timestamp":1700000000000,"price":"0.00","symbol":"BTC-USD","side":"buy",'
    b'"qty":1,"channel":"chat","room":"general","user_id":"","payload":{}}'
    b"\xa5topic\xa5epoch\xa6offset\xa4data\xa2id\xa6method\xa4echo\xa6status"
    b"\xa8sequence\xa6window\xa4code\xa6reason\xa7message\xa7channel"
    b"\xacbase_version\xa7version\xa3ops\xa8checksum"
)
