#include "coffre/audit/checkpoint.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/audit/signed_note.h"
#include "coffre/crypto/signature.h"
#include "support/vectors.h"

namespace coffre::audit {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;
using coffre::testing::VectorBlock;

constexpr std::string_view kEmDash = "\xE2\x80\x94";
constexpr std::string_view kOrigin = "relay.sdis13.example.fr/audit";

std::string Unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<VectorBlock> GoVectors() {
  auto blocks = ReadVectorFile("c2sp-signed-note-go/notes.txt");
  EXPECT_EQ(blocks.size(), 3u);
  return blocks;
}

const VectorBlock& Vector(const std::vector<VectorBlock>& blocks, const std::string& name) {
  for (const auto& block : blocks) {
    if (block.at("NAME") == name) return block;
  }
  ADD_FAILURE() << "no vector " << name;
  return blocks.front();
}

std::string SignatureLine(const VectorBlock& block) {
  std::string line(kEmDash);
  line += ' ';
  line += block.at("NAME");
  line += ' ';
  line += block.at("SIGNATURE");
  line += '\n';
  return line;
}

NoteVerifier VerifierOf(const VectorBlock& block) {
  auto verifier = NoteVerifier::FromVerifierKey(block.at("VKEY"));
  EXPECT_TRUE(verifier.has_value()) << block.at("VKEY");
  return *verifier;
}

// The signing key of a Go "PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)" string.
crypto::SigningKey SignerOf(const VectorBlock& block) {
  const std::string& skey = block.at("SKEY");
  std::size_t at = 0;
  for (int plus = 0; plus < 4; ++plus) at = skey.find('+', at) + 1;
  const std::string base64 = skey.substr(at);
  std::vector<std::uint8_t> decoded(64);
  std::size_t length = 0;
  EXPECT_EQ(sodium_base642bin(decoded.data(), decoded.size(), base64.data(), base64.size(), nullptr,
                              &length, nullptr, sodium_base64_VARIANT_ORIGINAL),
            0);
  EXPECT_EQ(length, 33u);
  EXPECT_EQ(decoded[0], 0x01);
  auto key = crypto::SigningKey::FromSeed(std::span(decoded).subspan(1, 32));
  EXPECT_TRUE(key.has_value());
  return std::move(key).value();
}

void ExpectCode(const auto& result, ErrorCode code) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), code);
}

// ---------------------------------------------------------------------------------------------
// Known answers from the Go note package and the Go checksum database

TEST(SignedNoteKatTest, VerifierKeysParseAndPrintBack) {
  for (const VectorBlock& block : GoVectors()) {
    const NoteVerifier verifier = VerifierOf(block);
    EXPECT_EQ(verifier.name(), block.at("NAME"));
    EXPECT_EQ(verifier.key_id(), std::stoul(block.at("KEY_ID"), nullptr, 16));
    EXPECT_EQ(NoteKeyId(verifier.name(), verifier.key()), verifier.key_id());
    EXPECT_EQ(verifier.VerifierKey(), block.at("VKEY"));
  }
}

TEST(SignedNoteKatTest, SigningReproducesTheGoSignatureByteForByte) {
  const auto blocks = GoVectors();
  const VectorBlock& peter = Vector(blocks, "PeterNeumann");
  const crypto::SigningKey key = SignerOf(peter);
  EXPECT_EQ(key.verify_key().bytes(), VerifierOf(peter).key().bytes());
  const std::string text = Unescape(peter.at("TEXT"));
  const auto note = SignNote(text, key, "PeterNeumann");
  ASSERT_TRUE(note.has_value());
  EXPECT_EQ(*note, text + "\n" + SignatureLine(peter));
}

TEST(SignedNoteKatTest, OpensANoteSignedByGoUnderEitherKey) {
  const auto blocks = GoVectors();
  const VectorBlock& peter = Vector(blocks, "PeterNeumann");
  const VectorBlock& enoch = Vector(blocks, "EnochRoot");
  const std::string text = Unescape(peter.at("TEXT"));
  const std::string note = text + "\n" + SignatureLine(peter) + SignatureLine(enoch);
  for (const VectorBlock* signer : {&peter, &enoch}) {
    const auto opened = OpenNote(note, VerifierOf(*signer));
    ASSERT_TRUE(opened.has_value()) << signer->at("NAME");
    EXPECT_EQ(*opened, text);
  }
  // Signed by Enoch only: Peter's verifier finds nothing it trusts.
  ExpectCode(OpenNote(text + "\n" + SignatureLine(enoch), VerifierOf(peter)),
             ErrorCode::kAuthenticationFailed);
}

TEST(SignedNoteKatTest, RefusesTheMalformedNotesOfTheGoSuite) {
  const auto blocks = GoVectors();
  const VectorBlock& peter = Vector(blocks, "PeterNeumann");
  const NoteVerifier verifier = VerifierOf(peter);
  const std::string text = Unescape(peter.at("TEXT"));
  const std::string sig = SignatureLine(peter);
  const std::string bad_name = std::string(kEmDash) + " Bad Name " + peter.at("SIGNATURE");
  for (const std::string& note :
       {text, text + "\n", text + "\n" + sig.substr(0, sig.size() - 1), "\x01" + text + "\n" + sig,
        "\xff" + text + "\n" + sig, text + "\n" + bad_name,
        text + "\n" + sig + "Unexpected line.\n"}) {
    ExpectCode(OpenNote(note, verifier), ErrorCode::kInvalidArgument);
  }
  // Too many signatures.
  std::string many = text + "\n";
  for (int i = 0; i < 101; ++i) many += sig;
  ExpectCode(OpenNote(many, verifier), ErrorCode::kInvalidArgument);
  // A signature by the pinned key that does not verify: the whole note is refused.
  const std::string broken = sig.substr(0, 60) + "ABCD" + sig.substr(60);
  ExpectCode(OpenNote(text + "\n" + broken, verifier), ErrorCode::kAuthenticationFailed);
  ExpectCode(OpenNote(text + "\n" + sig + broken, verifier), ErrorCode::kAuthenticationFailed);
  // Another name with the same key id, or the same name with another id: not our key.
  std::string misnamed = sig;
  misnamed.replace(misnamed.find("PeterNeumann"), 12, "CarmenSandiego");
  ExpectCode(OpenNote(text + "\n" + misnamed, verifier), ErrorCode::kAuthenticationFailed);
  std::string wrong_id = sig;
  wrong_id.replace(wrong_id.find("x08g"), 4, "xxxx");
  ExpectCode(OpenNote(text + "\n" + wrong_id, verifier), ErrorCode::kAuthenticationFailed);
  // The same valid signature twice is still a note signed by the pinned key.
  EXPECT_TRUE(OpenNote(text + "\n" + sig + sig, verifier).has_value());
}

TEST(SignedNoteKatTest, RefusesEveryManglingOfAVerifierKey) {
  const auto blocks = GoVectors();
  const std::string vkey = Vector(blocks, "PeterNeumann").at("VKEY");
  ASSERT_TRUE(NoteVerifier::FromVerifierKey(vkey).has_value());
  for (std::size_t i = 0; i <= vkey.size(); ++i) {
    for (std::size_t j = i + 1; j <= vkey.size(); ++j) {
      if (i == 0 && j == vkey.size()) continue;
      EXPECT_FALSE(NoteVerifier::FromVerifierKey(vkey.substr(i, j - i)).has_value())
          << vkey.substr(i, j - i);
    }
  }
  for (std::size_t i = 0; i < vkey.size(); ++i) {
    std::string changed = vkey;
    ++changed[i];
    EXPECT_FALSE(NoteVerifier::FromVerifierKey(changed).has_value()) << changed;
  }
  // From the Go suite: a key of the wrong length, an unknown algorithm (each with its key id
  // adjusted).
  EXPECT_FALSE(NoteVerifier::FromVerifierKey(
                   "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
                   .has_value());
  EXPECT_FALSE(NoteVerifier::FromVerifierKey(
                   "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                   .has_value());
  // One spelling of the key id: upper-case hex is refused.
  EXPECT_FALSE(NoteVerifier::FromVerifierKey(
                   "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                   .has_value());
}

TEST(CheckpointKatTest, VerifiesACheckpointOfTheGoChecksumDatabase) {
  const auto blocks = GoVectors();
  const VectorBlock& sumdb = Vector(blocks, "sum.golang.org");
  const std::string note = Unescape(sumdb.at("TEXT")) + "\n" + SignatureLine(sumdb);
  const auto checkpoint = ParseAndVerifyCheckpoint(note, VerifierOf(sumdb), sumdb.at("ORIGIN"));
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_EQ(checkpoint->origin, sumdb.at("ORIGIN"));
  EXPECT_EQ(checkpoint->size, std::stoull(sumdb.at("SIZE")));
  EXPECT_EQ(std::vector<std::uint8_t>(checkpoint->root.begin(), checkpoint->root.end()),
            FromHex(sumdb.at("ROOT")));
  // Our formatting of it is the text that was signed.
  EXPECT_EQ(*FormatCheckpoint(*checkpoint), Unescape(sumdb.at("TEXT")));
  // Another log's origin, the same key: refused.
  ExpectCode(ParseAndVerifyCheckpoint(note, VerifierOf(sumdb), "go.sum database tree2"),
             ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Our own checkpoints

class CheckpointTest : public ::testing::Test {
 protected:
  CheckpointTest()
      : key_(crypto::SigningKey::Generate()),
        verifier_(*NoteVerifier::FromPublicKey(kOrigin, key_.verify_key())) {
    checkpoint_.origin = std::string(kOrigin);
    checkpoint_.size = 1'000'003;
    for (std::size_t i = 0; i < checkpoint_.root.size(); ++i) {
      checkpoint_.root[i] = static_cast<std::uint8_t>(0xA0 + i);
    }
  }

  std::string Signed() { return *SignCheckpoint(checkpoint_, key_, kOrigin); }
  // `text` signed with the log key as it is, to test the body parser alone.
  std::string SignedText(std::string_view text) { return *SignNote(text, key_, kOrigin); }

  crypto::SigningKey key_;
  NoteVerifier verifier_;
  Checkpoint checkpoint_;
};

TEST_F(CheckpointTest, FormatFollowsTheSpecification) {
  const auto text = FormatCheckpoint(checkpoint_);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text,
            "relay.sdis13.example.fr/audit\n1000003\n"
            "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=\n");
  checkpoint_.size = 0;
  checkpoint_.root = EmptyRoot();
  EXPECT_EQ(*FormatCheckpoint(checkpoint_),
            "relay.sdis13.example.fr/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
}

TEST_F(CheckpointTest, SignedCheckpointRoundTrips) {
  const std::string note = Signed();
  EXPECT_EQ(note.substr(0, note.find("\n\n") + 2), *FormatCheckpoint(checkpoint_) + "\n");
  const std::string line_start = std::string(kEmDash) + " " + std::string(kOrigin) + " ";
  EXPECT_EQ(note.find(line_start), note.find("\n\n") + 2);
  const auto parsed = ParseAndVerifyCheckpoint(note, verifier_, kOrigin);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, checkpoint_);
  // The pinned key, as configuration would carry it.
  const auto pinned = NoteVerifier::FromVerifierKey(verifier_.VerifierKey());
  ASSERT_TRUE(pinned.has_value());
  EXPECT_TRUE(ParseAndVerifyCheckpoint(note, *pinned, kOrigin).has_value());
}

TEST_F(CheckpointTest, EverySingleByteChangeIsRefused) {
  const std::string note = Signed();
  for (std::size_t i = 0; i < note.size(); ++i) {
    for (int value = 0; value < 256; ++value) {
      if (static_cast<char>(value) == note[i]) continue;
      std::string changed = note;
      changed[i] = static_cast<char>(value);
      ASSERT_FALSE(ParseAndVerifyCheckpoint(changed, verifier_, kOrigin).has_value())
          << "byte " << i << " set to " << value;
    }
    std::string removed = note;
    removed.erase(i, 1);
    ASSERT_FALSE(ParseAndVerifyCheckpoint(removed, verifier_, kOrigin).has_value()) << i;
    for (const char inserted : {'\n', ' ', '0', 'A', '='}) {
      std::string longer = note;
      longer.insert(i, 1, inserted);
      ASSERT_FALSE(ParseAndVerifyCheckpoint(longer, verifier_, kOrigin).has_value())
          << "inserted " << int{inserted} << " at " << i;
    }
  }
  ASSERT_FALSE(ParseAndVerifyCheckpoint(note + "\n", verifier_, kOrigin).has_value());
  ASSERT_FALSE(ParseAndVerifyCheckpoint(note + "x", verifier_, kOrigin).has_value());
}

TEST_F(CheckpointTest, OtherKeysAndWitnessSignaturesAreIgnored) {
  const std::string note = Signed();
  const crypto::SigningKey witness = crypto::SigningKey::Generate();
  const std::string text = *FormatCheckpoint(checkpoint_);
  const std::string cosigned = *SignNote(text, witness, "witness.example.org");
  const std::string witness_line = cosigned.substr(cosigned.find("\n\n") + 2);
  // A witness's line before or after the log's does not matter.
  EXPECT_TRUE(ParseAndVerifyCheckpoint(note + witness_line, verifier_, kOrigin).has_value());
  EXPECT_TRUE(
      ParseAndVerifyCheckpoint(text + "\n" + witness_line + note.substr(note.find("\n\n") + 2),
                               verifier_, kOrigin)
          .has_value());
  // Only the witness's: not signed by the log.
  ExpectCode(ParseAndVerifyCheckpoint(cosigned, verifier_, kOrigin),
             ErrorCode::kAuthenticationFailed);
  // The log's key under another name is another key.
  ExpectCode(ParseAndVerifyCheckpoint(*SignCheckpoint(checkpoint_, key_, "other.example"),
                                      verifier_, kOrigin),
             ErrorCode::kAuthenticationFailed);
  // Another key under the log's name: its key id differs, so it is ignored.
  ExpectCode(
      ParseAndVerifyCheckpoint(*SignCheckpoint(checkpoint_, witness, kOrigin), verifier_, kOrigin),
      ErrorCode::kAuthenticationFailed);
}

TEST_F(CheckpointTest, SignatureCountAndNoteSizeAreBounded) {
  const std::string note = Signed();
  const std::string log_line = note.substr(note.find("\n\n") + 2);
  const std::string text = *FormatCheckpoint(checkpoint_);
  // Unknown signature lines: 31 of them and the log's are accepted, one more is not.
  std::string unknown;
  for (std::size_t i = 0; i + 1 < kMaxNoteSignatures; ++i) {
    // A key id and a 64-byte signature of zeros: 68 bytes, 92 base64 characters.
    unknown += std::string(kEmDash) + " w" + std::to_string(i) + " " + std::string(91, 'A') + "=\n";
  }
  EXPECT_TRUE(
      ParseAndVerifyCheckpoint(text + "\n" + unknown + log_line, verifier_, kOrigin).has_value());
  ExpectCode(
      ParseAndVerifyCheckpoint(text + "\n" + unknown + log_line + log_line, verifier_, kOrigin),
      ErrorCode::kInvalidArgument);
  // A note over 16 KiB, however valid otherwise.
  const std::string big_line =
      std::string(kEmDash) + " big " + std::string(16 * 1024 / 4 * 4, 'A') + "\n";
  ExpectCode(ParseAndVerifyCheckpoint(text + "\n" + big_line + log_line, verifier_, kOrigin),
             ErrorCode::kInvalidArgument);
}

TEST_F(CheckpointTest, BodiesThatAreNotCanonicalCheckpointsAreRefused) {
  const std::string root = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=";
  const std::string origin(kOrigin);
  // Accepted edge values.
  EXPECT_TRUE(
      ParseAndVerifyCheckpoint(SignedText(origin + "\n0\n" + root + "\n"), verifier_, kOrigin)
          .has_value());
  const auto largest = ParseAndVerifyCheckpoint(
      SignedText(origin + "\n9223372036854775807\n" + root + "\n"), verifier_, kOrigin);
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(largest->size, kMaxTreeSize);
  for (const std::string& body : {
           origin + "\n042\n" + root + "\n",                   // leading zero
           origin + "\n00\n" + root + "\n",                    // leading zero
           origin + "\n9223372036854775808\n" + root + "\n",   // 2^63
           origin + "\n18446744073709551616\n" + root + "\n",  // 2^64, 20 digits
           origin + "\n99999999999999999999\n" + root + "\n",  // overflows 64 bits
           origin + "\n+5\n" + root + "\n",
           origin + "\n-1\n" + root + "\n",
           origin + "\n 5\n" + root + "\n",
           origin + "\n5 \n" + root + "\n",
           origin + "\n\n" + root + "\n",  // empty size line
           origin + "\n0x10\n" + root + "\n",
           origin + "\n5\n" + root.substr(0, 43) + "\n",    // padding missing
           origin + "\n5\n" + root.substr(0, 42) + "B=\n",  // unused bits set
           origin + "\n5\n" + root + "=\n",
           origin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",  // 31 bytes
           origin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",  // 33 bytes
           origin + "\n5\noKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8\n",   // no padding
           origin + "\n5\n" + root + "\nextension line\n",  // extension lines: refused
           origin + "\n5\n",                                // no root line
           origin + "\n",
           "\n5\n" + root + "\n",             // empty origin
           origin + "x\n5\n" + root + "\n",   // another origin
           origin + "\n5\n" + root + "\n\n",  // a blank line in the text
       }) {
    const std::string note = SignedText(body);
    ExpectCode(ParseAndVerifyCheckpoint(note, verifier_, kOrigin), ErrorCode::kInvalidArgument);
  }
}

TEST_F(CheckpointTest, NotesThatAreNotWellFormedAreRefused) {
  const std::string note = Signed();
  const std::string text = *FormatCheckpoint(checkpoint_);
  const std::string log_line = note.substr(note.find("\n\n") + 2);
  for (const std::string& changed : {
           std::string(), note.substr(0, note.size() - 1),            // no final newline
           text + log_line,                                           // no blank line
           text + "\r\n" + log_line,                                  // carriage return
           text + "\n" + "- " + log_line.substr(4),                   // ASCII dash for the em dash
           text + "\n" + log_line.substr(0, 3) + log_line.substr(4),  // no space after the dash
           text + "\n" + std::string(kEmDash) + " \n",                // no name, no signature
           text + "\n" + std::string(kEmDash) + " name\n",
           text + "\n" + std::string(kEmDash) + " name AAAA\n",       // 3 bytes: no signature
           text + "\n" + std::string(kEmDash) + " na+me AAAAAAA=\n",  // '+' in the name
           text + "\n" + std::string(kEmDash) + " name\xC2\xA0x AAAAAAA=\n",  // U+00A0
           text + "\n" + std::string(kEmDash) + " name AAAAAAA=\n\n",  // blank line at the end
           text + "\n" + std::string(kEmDash) +
               " name AA\xC0\x80"
               "AAAA=\n",                                    // overlong UTF-8
           note + std::string(kEmDash) + " name AAAAAAA\n",  // bad base64
       }) {
    ExpectCode(ParseAndVerifyCheckpoint(changed, verifier_, kOrigin), ErrorCode::kInvalidArgument);
  }
}

TEST_F(CheckpointTest, SigningRefusesWhatCouldNotBeParsed) {
  Checkpoint bad = checkpoint_;
  for (const std::string& origin : {std::string(), std::string("a\nb"), std::string("a\tb"),
                                    std::string(257, 'o'), std::string("\xff")}) {
    bad.origin = origin;
    ExpectCode(SignCheckpoint(bad, key_, kOrigin), ErrorCode::kInvalidArgument);
  }
  bad = checkpoint_;
  bad.size = kMaxTreeSize + 1;
  ExpectCode(FormatCheckpoint(bad), ErrorCode::kInvalidArgument);
  for (const std::string_view name : {"", "a b", "a+b", "a\nb",
                                      "a\xE3\x80\x80"
                                      "b"}) {
    ExpectCode(SignCheckpoint(checkpoint_, key_, name), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(SignCheckpoint(checkpoint_, key_, "journal.sécurité.example").has_value());
  for (const std::string_view text : {"", "no newline", "carriage\r\n", "\xC3\x28\n", "tab\t\n"}) {
    ExpectCode(SignNote(text, key_, kOrigin), ErrorCode::kInvalidArgument);
  }
  ExpectCode(SignNote(std::string(kMaxNoteSize, 'a') + "\n", key_, kOrigin),
             ErrorCode::kInvalidArgument);
  // The origin is an origin, spaces allowed (the Go checksum database's has some).
  EXPECT_TRUE(ValidateOrigin("go.sum database tree").has_value());
}

}  // namespace
}  // namespace coffre::audit
