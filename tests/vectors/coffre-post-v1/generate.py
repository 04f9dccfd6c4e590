#!/usr/bin/env python3
"""Writes post.txt: known-answer vectors of the Coffre post format (docs/protocol.md,
"Client content formats"), computed from fixed inputs with an implementation separate
from client/src/content.cc: Python's hashlib BLAKE2b, HChaCha20 written out below
(draft-irtf-cfrg-xchacha-03 §2.2) and the ChaCha20-Poly1305 of the `cryptography`
package (RFC 8439), protobuf encoded by hand.

Run from this folder: python3 generate.py > post.txt
"""
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

MASK = 0xFFFFFFFF


def rotl(v, c):
    return ((v << c) & MASK) | (v >> (32 - c))


def quarter_round(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter_round(s, 0, 4, 8, 12); quarter_round(s, 1, 5, 9, 13)
        quarter_round(s, 2, 6, 10, 14); quarter_round(s, 3, 7, 11, 15)
        quarter_round(s, 0, 5, 10, 15); quarter_round(s, 1, 6, 11, 12)
        quarter_round(s, 2, 7, 8, 13); quarter_round(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha20poly1305_seal(key, nonce24, plaintext, ad):
    subkey = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(subkey).encrypt(b"\0" * 4 + nonce24[16:], plaintext, ad)


def self_check():
    # draft-irtf-cfrg-xchacha-03 §A.3.1, the vector in ../xchacha20poly1305-draft-irtf-cfrg-xchacha/.
    key = bytes(range(0x80, 0xA0))
    nonce = bytes(range(0x40, 0x58))
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
          b"for the future, sunscreen would be it.")
    out = xchacha20poly1305_seal(key, nonce, pt, ad)
    assert out[-16:].hex() == "c0875924c1c7987947deafd8780acf49"
    assert out[:16].hex() == "bd6d179d3e83d43b9576579493c0e939"


def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)


def derive_subkey(parent, label, context):
    label = label.encode()
    message = b"coffre/kdf/v1" + u16(len(label)) + label + context
    return hashlib.blake2b(message, key=parent, digest_size=32).digest()


def varint(v):
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# proto3 encoding as protobuf writes it: fields in number order, default values omitted.
def pb_bytes(number, value):
    return varint(number << 3 | 2) + varint(len(value)) + value if value else b""


def pb_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""


BUCKETS = [256, 1024, 4096, 16384, 32768, 49152]


def pad(encoded):
    size = next(b for b in BUCKETS if len(encoded) < b)
    return encoded + b"\x80" + b"\0" * (size - len(encoded) - 1)


def hex_lines(name, data, width=32):
    if not data:
        return [name + ":"]
    return ["%s: %s" % (name, data[i:i + width].hex()) for i in range(0, len(data), width)]


def block(comment, ptk, team, generation, channel, post, parent, user, device, chain_sequence,
          chain_hash, text, sent_ms, nonce):
    channel_key = derive_subkey(ptk, "coffre/channel-key/v1", team + u64(generation) + channel)
    ad = (bytes([1]) + team + u64(generation) + channel + post + bytes([len(parent)]) + parent +
          u64(chain_sequence) + chain_hash + u16(len(user)) + user + u32(device))
    padded = pad(pb_bytes(1, text) + pb_varint(2, sent_ms))
    label = b"coffre/post/v1"
    sealed = nonce + xchacha20poly1305_seal(channel_key, nonce, padded, u16(len(label)) + label + ad)
    header = (pb_varint(1, 1) + pb_bytes(2, channel) + pb_bytes(3, parent) +
              pb_varint(4, chain_sequence) + pb_bytes(5, chain_hash) + pb_bytes(6, sealed))
    lines = ["# " + comment]
    lines += hex_lines("PTK", ptk) + hex_lines("TEAM", team)
    lines.append("GENERATION: %d" % generation)
    lines += hex_lines("CHANNEL", channel) + hex_lines("POST", post) + hex_lines("PARENT", parent)
    lines += hex_lines("USER", user)
    lines.append("DEVICE: %d" % device)
    lines.append("CHAIN_SEQUENCE: %d" % chain_sequence)
    lines += hex_lines("CHAIN_HASH", chain_hash) + hex_lines("TEXT", text)
    lines.append("SENT_MS: %d" % sent_ms)
    lines += hex_lines("CHANNEL_KEY", channel_key) + hex_lines("AD", ad)
    lines += hex_lines("PADDED", padded) + hex_lines("NONCE", nonce)
    lines += hex_lines("METADATA", header)
    return "\n".join(lines)


def main():
    self_check()
    ptk = bytes(range(0x00, 0x20))
    team = bytes(range(0xA0, 0xB0))
    channel = bytes(range(0xC0, 0xD0))
    chain_hash = hashlib.blake2b(b"coffre test chain head", digest_size=32).digest()
    reply_text = ("Bien reçu. Le plan d'intervention révisé est dans le coffre : accès par la "
                  "rue des Tanneurs, point de regroupement au parking sud, colonne de secours "
                  "en attente à l'entrée est. Merci de confirmer la disponibilité des deux "
                  "véhicules de l'astreinte avant 18 h, et de relire la fiche réflexe n° 7 "
                  "sur l'évacuation du parking souterrain ; elle a changé depuis l'exercice "
                  "de mars.").encode()
    blocks = [
        block("A top-level post: 256-byte bucket.", ptk, team, 1, channel,
              bytes(range(0xD0, 0xE0)), b"", b"alice", 1, 3, chain_hash,
              "Réunion de préparation à 14 h, salle B.".encode(), 1718870400000,
              bytes(range(0x40, 0x58))),
        block("An answer in a thread (parent set), generation 2: 1 KiB bucket.", ptk, team, 2,
              channel, bytes(range(0xE0, 0xF0)), bytes(range(0xD0, 0xE0)), b"bob.martin", 2147483647,
              12, chain_hash, reply_text, 1718871234567, bytes(range(0x60, 0x78))),
        block("Empty text and sent_ms 0: both PostBody fields omitted, body is only padding.",
              ptk, team, 7, channel, bytes(range(0x10, 0x20)), b"", b"c", 9, 0,
              bytes(32), b"", 0, bytes(24)),
    ]
    print("# Coffre post format (coffre/post/v1) known-answer vectors.")
    print("# Generated by generate.py in this folder; see METADATA. Hex except GENERATION,")
    print("# DEVICE, CHAIN_SEQUENCE and SENT_MS (decimal); long values continue on repeated keys.")
    print("# METADATA is the manifest's encrypted_metadata: the serialized PostHeader whose")
    print("# ciphertext is NONCE || XChaCha20-Poly1305(CHANNEL_KEY, PADDED, label || AD).")
    for b in blocks:
        print()
        print(b)


if __name__ == "__main__":
    main()
