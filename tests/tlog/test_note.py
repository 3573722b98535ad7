"""C2SP signed notes and checkpoints: parsing, key IDs, and the verification rules."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import Checkpoint, NoteKey, SignedCheckpoint, SignedNote, load_log_public_key
from opkey.tlog.note import MAX_NOTE_LENGTH, MAX_NOTE_SIGNATURES

NOTE_VECTORS = json.loads((Path(__file__).parents[1] / "data/tlog/note-vectors.json").read_text())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign_note(text: str, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
              note_key: NoteKey) -> str:  # fmt: skip
    """``text`` signed by ``key`` as a signed note line for ``note_key``."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(text.encode())
    else:
        signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    return f"— {note_key.name} {_b64(note_key.key_id + signature)}\n"


def test_the_go_sumdb_example_note_verifies() -> None:
    (vector,) = NOTE_VECTORS["vectors"]
    name, key_id, encoded = vector["verifier_key"].split("+")
    raw = base64.b64decode(encoded)
    assert raw[0] == 1  # Ed25519
    key = NoteKey.ed25519(name, ed25519.Ed25519PublicKey.from_public_bytes(raw[1:]))
    assert key.key_id.hex() == key_id  # C2SP key ID = SHA-256(name || \n || 0x01 || key)[:4]
    note = SignedNote.parse(vector["note"])
    assert note.text.startswith("If you think cryptography")
    assert note.verify([key]) == (key,)
    tampered = vector["note"].replace("answer", "question")
    with pytest.raises(TransparencyLogError, match="does not verify"):
        SignedNote.parse(tampered).verify([key])


def test_key_ids_as_each_log_computes_them() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = ed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    spki_ed = ed.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki_ec = p256.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (
        NoteKey.ed25519("log.example", ed).key_hash
        == hashlib.sha256(b"log.example\n\x01" + raw).digest()
    )
    assert NoteKey.ecdsa("log.example", p256).key_hash == hashlib.sha256(spki_ec).digest()
    assert NoteKey.c2sp("x", p256) == NoteKey.ecdsa("x", p256)
    assert NoteKey.c2sp("x", ed) == NoteKey.ed25519("x", ed)
    # Rekor v1 hashes the SPKI whatever the key type, and ignores the name.
    assert NoteKey.rekor_v1("a", ed).key_hash == hashlib.sha256(spki_ed).digest()
    assert NoteKey.rekor_v1("a", p256).key_hash == NoteKey.rekor_v1("b", p256).key_hash
    assert NoteKey.ed25519("a", ed).key_hash != NoteKey.ed25519("b", ed).key_hash


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signed_notes_of_both_key_types(kind: str) -> None:
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        key = NoteKey.ed25519("log.example/a", private.public_key())
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        key = NoteKey.ecdsa("log.example/a", private.public_key())
    text = "log.example/a\n5\n" + _b64(bytes(32)) + "\n"
    note = SignedNote.parse(text + "\n" + sign_note(text, private, key))
    assert note.verify([key]) == (key,)
    assert note.signatures[0].key_id == key.key_id


def _two_keys() -> tuple[ed25519.Ed25519PrivateKey, NoteKey, ed25519.Ed25519PrivateKey, NoteKey]:
    a, b = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    return (
        a,
        NoteKey.ed25519("log.a", a.public_key()),
        b,
        NoteKey.ed25519("witness.b", b.public_key()),
    )


TEXT = "log.a\n3\n" + _b64(bytes(range(32))) + "\n"


def test_unknown_signatures_are_ignored_and_known_ones_must_verify() -> None:
    a, key_a, b, key_b = _two_keys()
    note = SignedNote.parse(TEXT + "\n" + sign_note(TEXT, b, key_b) + sign_note(TEXT, a, key_a))
    assert note.verify([key_a]) == (key_a,)  # the witness line is not ours: ignored
    assert set(note.verify([key_a, key_b])) == {key_a, key_b}
    with pytest.raises(TransparencyLogError, match="not signed by a trusted key"):
        SignedNote.parse(TEXT + "\n" + sign_note(TEXT, b, key_b)).verify([key_a])
    # A line that claims key A (same name and ID) but is by B: the whole note is rejected.
    forged = sign_note(TEXT, b, key_a)
    with pytest.raises(TransparencyLogError, match="does not verify"):
        SignedNote.parse(TEXT + "\n" + sign_note(TEXT, a, key_a) + forged).verify([key_a])
    # Same name, other ID (or same ID, other name): not the trusted key, so ignored.
    other_id = f"— log.a {_b64(b'abcd' + a.sign(TEXT.encode()))}\n"
    with pytest.raises(TransparencyLogError, match="not signed by a trusted key"):
        SignedNote.parse(TEXT + "\n" + other_id).verify([key_a])
    other_name = f"— log.z {_b64(key_a.key_id + a.sign(TEXT.encode()))}\n"
    with pytest.raises(TransparencyLogError, match="not signed by a trusted key"):
        SignedNote.parse(TEXT + "\n" + other_name).verify([key_a])
    with pytest.raises(TransparencyLogError):
        SignedNote.parse(TEXT + "\n" + sign_note(TEXT, a, key_a)).verify([])


GOOD_SIG = "— log.a " + _b64(b"\x01\x02\x03\x04" + bytes(64)) + "\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TEXT + GOOD_SIG, "blank line"),
        (TEXT + "\n" + GOOD_SIG[:-1], "end with a newline"),
        (TEXT + "\n" + "- log.a " + GOOD_SIG[8:], "em dash"),
        (TEXT + "\n" + "— log.a  " + GOOD_SIG[8:], "'— <name> <base64>'"),
        (TEXT + "\n" + "— log+a " + GOOD_SIG[8:], "space, '\\+' or control"),
        (TEXT + "\n" + "— log\u00a0a " + GOOD_SIG[8:], "space, '\\+' or control"),
        (TEXT + "\n" + "— log\u2003a " + GOOD_SIG[8:], "space, '\\+' or control"),
        (TEXT + "\n" + "—  " + GOOD_SIG[8:], "non-empty"),
        (TEXT + "\n" + "— log.a AAAAAA==\n", "shorter than a key ID"),
        (TEXT + "\n" + "— log.a AAAAAAB=\n", "non-canonical"),
        (TEXT + "\n" + "— log.a AAAAAAAAAA\n", "padded"),
        (TEXT + "\n" + "— log.a AAAA AAAA\n", "'— <name> <base64>'"),
        ("log.a\t\n3\n" + "\n" + GOOD_SIG, "control character"),
        (TEXT + "\n" + GOOD_SIG + "\n", "end with a newline"),
        (TEXT + "\n" + GOOD_SIG * (MAX_NOTE_SIGNATURES + 1), "more than"),
        ("x" * MAX_NOTE_LENGTH + "\n\n" + GOOD_SIG, "more than"),
    ],
)
def test_malformed_notes_are_format_errors(data: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        SignedNote.parse(data)


def test_note_bytes_must_be_utf8_text() -> None:
    with pytest.raises(FormatError, match="UTF-8"):
        SignedNote.parse(b"\xff\xfe\n\n" + GOOD_SIG.encode())
    with pytest.raises(FormatError, match="surrogate"):
        SignedNote.parse("log\ud800\n\n" + GOOD_SIG)
    with pytest.raises(FormatError, match="expected text"):
        SignedNote.parse(42)  # type: ignore[arg-type]


def test_the_text_is_split_at_the_last_blank_line() -> None:
    note = SignedNote.parse("a\n\nb\n\n" + GOOD_SIG)
    assert note.text == "a\n\nb\n"


# -- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_round_trips_and_verifies() -> None:
    a, key_a, _, _ = _two_keys()
    body = Checkpoint("log.a", 3, bytes(range(32)), ("ext one",))
    envelope = body.text() + "\n" + sign_note(body.text(), a, key_a)
    signed = SignedCheckpoint.parse(envelope)
    assert signed.checkpoint == body
    assert signed.verify([key_a], origin="log.a") == body
    with pytest.raises(TransparencyLogError, match="origin"):
        signed.verify([key_a], origin="log.b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log.a\n3\n", "needs origin, size and root"),
        ("\n3\n" + _b64(bytes(32)) + "\n", "empty origin"),
        ("log.a\n03\n" + _b64(bytes(32)) + "\n", "leading zeros"),
        ("log.a\n-3\n" + _b64(bytes(32)) + "\n", "decimal"),
        ("log.a\n+3\n" + _b64(bytes(32)) + "\n", "decimal"),
        ("log.a\n 3\n" + _b64(bytes(32)) + "\n", "decimal"),
        ("log.a\n9223372036854775808\n" + _b64(bytes(32)) + "\n", "beyond"),
        ("log.a\n3\n" + _b64(bytes(31)) + "\n", "31 bytes"),
        ("log.a\n3\n" + _b64(bytes(32)).rstrip("=") + "\n", "padded"),
        ("log.a\n3\n" + _b64(bytes(32)) + "\n\nextension\n", "empty extension"),
        ("log.a\n3\n" + _b64(bytes(32)), "end with a newline"),
    ],
)
def test_malformed_checkpoints_are_format_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Checkpoint.parse(text)


def test_size_zero_and_the_largest_size_parse() -> None:
    empty = hashlib.sha256(b"").digest()
    assert Checkpoint.parse(f"l\n0\n{_b64(empty)}\n").tree_size == 0
    assert Checkpoint.parse(f"l\n{2**63 - 1}\n{_b64(empty)}\n").tree_size == 2**63 - 1


# -- log keys -----------------------------------------------------------------------------------


def test_log_keys_load_from_pem_and_der_and_only_p256_or_ed25519() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = p256.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = p256.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_log_public_key(pem) == p256
    assert load_log_public_key(der) == p256
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(FormatError, match="P-256"):
        load_log_public_key(
            p384.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(FormatError, match="ECDSA P-256 or Ed25519"):
        load_log_public_key(
            rsa_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    with pytest.raises(FormatError, match="not a PEM or DER"):
        load_log_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(FormatError, match="too large"):
        load_log_public_key(b"0" * 20000)
