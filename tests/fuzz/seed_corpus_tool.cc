// Writes the seed corpus of every fuzz target under the directory given (normally
// tests/fuzz/corpus): valid inputs made with the same fixed, public keys the targets use, so
// that the fuzzing starts from inputs that reach the deep checks and the success paths.
// Nonces, headers and device keys are random, so every run writes different (equally valid)
// seeds; run it again only when a format or a target's input layout changes:
//
//   cmake --build BUILD --target fuzz_seed_corpus_tool && BUILD/tests/fuzz/fuzz_seed_corpus_tool
//   tests/fuzz/corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/client/content.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/sealed_box.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"
#include "coffre/wire/v1/wire.pb.h"
#include "content_fuzz_keys.h"

namespace coffre::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "seed_corpus_tool: %s\n", what);
  std::exit(1);
}

Bytes Text(std::string_view text) { return {text.begin(), text.end()}; }

Bytes Concat(std::initializer_list<std::span<const std::uint8_t>> parts) {
  Bytes out;
  for (const auto part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

Bytes U64(std::uint64_t value) {
  Bytes out(8);
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(value >> (56 - 8 * i));
  return out;
}

// The fixed keys of the targets: `first`, first + 1, ..., over `size` bytes.
SecretBytes CountingBytes(std::uint8_t first, std::size_t size) {
  SecretBytes bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes.data()[i] = static_cast<std::uint8_t>(first + i);
  return bytes;
}

class CorpusWriter {
 public:
  explicit CorpusWriter(std::filesystem::path root) : root_(std::move(root)) {}

  void Write(std::string_view target, std::string_view name, std::span<const std::uint8_t> bytes) {
    const std::filesystem::path directory = root_ / target;
    std::filesystem::create_directories(directory);
    std::ofstream file(directory / name, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    Require(static_cast<bool>(file), "cannot write a seed file");
  }

 private:
  std::filesystem::path root_;
};

void WriteBundles(CorpusWriter& out) {
  InMemorySignalStores stores;
  auto device = SignalDevice::Create(SignalAddress{"seed", 7}, stores.stores());
  Require(device && (*device)->GenerateIdentity() && (*device)->GeneratePreKeys(1, 1) &&
              (*device)->GenerateSignedPreKey(1, 1'700'000'000'000),
          "cannot set up a device");
  auto with_pre_key = (*device)->CreatePreKeyBundle(1, 1);
  auto without_pre_key = (*device)->CreatePreKeyBundle(std::nullopt, 1);
  Require(with_pre_key && without_pre_key, "cannot make bundles");
  out.Write("bundle_parse_fuzz", "with-one-time-prekey", with_pre_key->Serialize());
  out.Write("bundle_parse_fuzz", "without-one-time-prekey", without_pre_key->Serialize());
}

void WriteKdfRecords(CorpusWriter& out) {
  const std::pair<const char*, Argon2Params> records[] = {
      {"default-parameters", kDefaultArgon2Params},
      {"minimum-parameters", kMinimumArgon2Params},
      {"maximum-parameters",
       Argon2Params{kMaxArgon2MemoryKib, kMaxArgon2Iterations, kMaxArgon2Parallelism}},
  };
  for (const auto& [name, params] : records) {
    auto record = PassphraseKdfRecord::Create(params);
    Require(record.has_value(), "cannot make a KDF record");
    out.Write("kdf_record_parse_fuzz", name, record->Serialize());
  }
}

// document_stream_fuzz input: [n][associated data][range mode][offset][length][stream].
void WriteDocumentStreams(CorpusWriter& out) {
  const SecretBytes key = CountingBytes(0x00, kDocumentKeySize);
  struct Seed {
    const char* name;
    std::string_view associated_data;
    std::size_t plaintext_size;
    std::uint64_t offset;
    std::uint64_t length;
    int claimed_size_delta;  // what the reader-based DecryptRange is told, -32..31
  };
  const Seed seeds[] = {
      {"empty-document", "doc:0001|v1", 0, 0, 0, 0},
      {"small-document", "doc:0002|v7|plan", 300, 10, 100, 0},
      {"small-document-no-associated-data", "", 40, 1, 40, 0},
      {"two-chunk-document", "doc:0003|v2|attachment", kStreamChunkSize + 1, kStreamChunkSize - 8,
       9, 0},
      // A range in the first chunk of a stream claimed 3 bytes longer: it still decrypts.
      {"two-chunk-document-claimed-longer", "doc:0004|v1", kStreamChunkSize + 1, 100, 50, 3},
  };
  for (const Seed& seed : seeds) {
    Bytes plaintext(seed.plaintext_size);
    for (std::size_t i = 0; i < plaintext.size(); ++i) {
      plaintext[i] = static_cast<std::uint8_t>('a' + i % 26);
    }
    const Bytes associated_data = Text(seed.associated_data);
    auto stream = EncryptDocument(key, associated_data, plaintext);
    Require(stream.has_value(), "cannot encrypt a document");
    const Bytes ad_size = {static_cast<std::uint8_t>(associated_data.size())};
    // Bit 0 clear: reduce the range into the document; bits 2..7: the claimed size delta.
    const Bytes range_mode = {static_cast<std::uint8_t>((seed.claimed_size_delta + 32) << 2)};
    out.Write("document_stream_fuzz", seed.name,
              Concat({ad_size, associated_data, range_mode, U64(seed.offset), U64(seed.length),
                      *stream}));
  }
}

// aead_open_fuzz input: [n][associated data][sealed].
void WriteAeadMessages(CorpusWriter& out) {
  auto key = AeadKey::FromBytes(CountingBytes(0x20, kAeadKeySize));
  Require(key.has_value(), "bad AEAD key");
  const std::pair<std::string_view, std::string_view> seeds[] = {
      {"doc:0001|wrapped-key", ""},
      {"", "a wrapped document key, thirty-two"},
      {"device:3|backup", "backup blob"},
  };
  int index = 0;
  for (const auto& [ad_text, plaintext] : seeds) {
    const Bytes associated_data = Text(ad_text);
    const Bytes sealed = AeadSeal(*key, "coffre.fuzz.aead.v1", Text(plaintext), associated_data);
    const Bytes ad_size = {static_cast<std::uint8_t>(associated_data.size())};
    out.Write("aead_open_fuzz", "sealed-" + std::to_string(index++),
              Concat({ad_size, associated_data, sealed}));
  }
}

void WriteSealedBoxes(CorpusWriter& out) {
  auto recipient = X25519KeyPair::FromSecret(CountingBytes(0x40, kX25519KeySize));
  Require(recipient.has_value(), "bad X25519 key");
  out.Write("sealed_box_fuzz", "sealed-empty",
            SealToPublicKey(recipient->public_key(), "coffre.fuzz.sealed-box.v1", {}));
  out.Write("sealed_box_fuzz", "sealed-invitation",
            SealToPublicKey(recipient->public_key(), "coffre.fuzz.sealed-box.v1",
                            Text("invitation: team key and relay address")));
  // A low-order point (order 8, RFC 7748 §6.1 list as in libsodium) for FromBytes.
  const Bytes low_order = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
                           0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
                           0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
  out.Write("sealed_box_fuzz", "low-order-public-key", low_order);
}

// signature_verify_fuzz input: [public key][signature][message].
void WriteSignatures(CorpusWriter& out) {
  const SecretBytes seed = CountingBytes(0x60, kEd25519SeedSize);
  auto key = SigningKey::FromSeed(seed.span());
  Require(key.has_value(), "bad Ed25519 seed");
  const std::pair<const char*, std::string_view> seeds[] = {
      {"signed-empty", ""},
      {"signed-certificate", "device certificate: device 3, key 0x05..., not after 2031"},
  };
  for (const auto& [name, message] : seeds) {
    const auto signature = key->Sign("coffre.fuzz.signature.v1", Text(message));
    out.Write("signature_verify_fuzz", name,
              Concat({key->verify_key().bytes(), signature, Text(message)}));
  }
}

// signal_message_fuzz input: [mode][offset][operation][edit] (see the target).
void WriteSignalEdits(CorpusWriter& out) {
  const std::pair<const char*, Bytes> seeds[] = {
      {"00-raw-empty", {0x00}},
      {"00-raw-bytes", {0x00, 0x33, 0x0a, 0x21, 0x05, 0x01, 0x02}},
      {"01-prekey-message", {0x01}},
      {"02-whisper-message", {0x02}},
      {"03-group-message", {0x03}},
      {"04-second-group-distribution", {0x04}},
      {"05-second-group-message", {0x05}},
      {"11-prekey-message-bit-flip", {0x01, 0x00, 0x08, 0x02, 0x01}},
      {"12-whisper-message-truncated", {0x02, 0x00, 0x20, 0x03}},
      {"13-group-message-insert", {0x03, 0x00, 0x01, 0x01, 0x00}},
      {"14-distribution-other-group", {0x04, 0x00, 0x06, 0x00, 'X'}},
  };
  for (const auto& [name, bytes] : seeds) out.Write("signal_message_fuzz", name, bytes);
}

// --- The client's content formats, under the keys of content_fuzz_keys.h ----------------

client::ItemId CountingId(std::uint8_t first) {
  client::ItemId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(first + i);
  return id;
}

protocol::Hash FilledHash(std::uint8_t value) {
  protocol::Hash hash{};
  hash.fill(value);
  return hash;
}

Bytes Serialized(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  return Bytes(bytes.begin(), bytes.end());
}

void SetBytes(std::string* field, std::span<const std::uint8_t> bytes) {
  field->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// peer_message_fuzz input: the padded plaintext a pairwise session delivers.
void WritePeerMessages(CorpusWriter& out) {
  client::TeamKeyDelivery delivery;
  delivery.team_id = CountingId(0x10);
  delivery.generation = 3;
  delivery.key = CountingBytes(0x30, client::kTeamKeySize);
  delivery.chain_head = {7, FilledHash(0x55)};
  delivery.team_name = "sdis-operations";
  const auto team_key = client::EncodePeerMessage(delivery);
  Require(team_key.has_value(), "cannot encode a team key delivery");
  out.Write("peer_message_fuzz", "team-key", team_key->span());

  client::TeamIntroduction introduction;
  introduction.team_id = CountingId(0x20);
  introduction.team_name = "sdis-operations";
  introduction.chain_head = {2, FilledHash(0x66)};
  const auto team_intro = client::EncodePeerMessage(introduction);
  Require(team_intro.has_value(), "cannot encode a team introduction");
  out.Write("peer_message_fuzz", "team-intro", team_intro->span());

  const std::pair<const char*, std::string> directs[] = {
      {"direct-short", "Point de regroupement Nord"},
      {"direct-empty", ""},
      {"direct-long", std::string(3000, 'x')},
  };
  std::uint8_t first = 0x40;
  for (const auto& [name, text] : directs) {
    client::DirectMessage direct;
    direct.message_id = CountingId(first++);
    direct.text = text;
    direct.sent_ms = 1764000000000;
    const auto encoded = client::EncodePeerMessage(direct);
    Require(encoded.has_value(), "cannot encode a direct message");
    out.Write("peer_message_fuzz", name, encoded->span());
  }
}

// post_open_fuzz input: a serialized "post" ItemManifestBody sealed under ChannelKey().
void WritePosts(CorpusWriter& out) {
  struct Seed {
    const char* name;
    bool reply;
    std::string text;
  };
  const Seed seeds[] = {
      {"post", false, "Point de regroupement Nord, 14 h"},
      {"reply-in-thread", true, "Bien reçu"},
      {"post-long", false, std::string(5000, 'y')},
  };
  std::uint8_t first = 0x30;
  for (const auto& seed : seeds) {
    client::PostContext context;
    context.team_id = CountingId(0x10);
    context.generation = 2;
    context.channel_id = CountingId(0x20);
    context.post_id = CountingId(first++);
    if (seed.reply) context.parent_post_id = CountingId(0x90);
    context.sender_user_id = "alice";
    context.sender_device_id = 1;
    context.chain_head = {4, FilledHash(0x66)};
    const auto sealed =
        client::SealPost(fuzz::ChannelKey(), context, seed.text, 1764000000000);
    Require(sealed.has_value(), "cannot seal a post");
    wire::v1::ItemManifestBody body;
    SetBytes(body.mutable_team_id(), context.team_id);
    SetBytes(body.mutable_item_id(), context.post_id);
    body.set_version(1);
    body.set_kind(std::string(client::kPostKind));
    body.set_key_generation(context.generation);
    SetBytes(body.mutable_encrypted_metadata(), *sealed);
    body.set_author_user_id(context.sender_user_id);
    body.set_author_device_id(context.sender_device_id);
    body.set_created_ms(1764000000000);
    out.Write("post_open_fuzz", seed.name, Serialized(body));
  }
}

// item_metadata_fuzz input: a serialized "channel" or "document" ItemManifestBody, its
// metadata under MetadataKey(), its document key DocumentKey() wrapped under WrapKey().
void WriteItemMetadata(CorpusWriter& out) {
  client::ItemContext channel_context{CountingId(0x10), CountingId(0x50), 1, 2};
  const auto channel_info =
      client::SealChannelInfo(fuzz::MetadataKey(), channel_context, client::ChannelInfo{"plans"});
  Require(channel_info.has_value(), "cannot seal channel metadata");
  wire::v1::ItemManifestBody channel;
  SetBytes(channel.mutable_team_id(), channel_context.team_id);
  SetBytes(channel.mutable_item_id(), channel_context.item_id);
  channel.set_version(channel_context.version);
  channel.set_kind(std::string(client::kChannelKind));
  channel.set_key_generation(channel_context.generation);
  SetBytes(channel.mutable_encrypted_metadata(), *channel_info);
  channel.set_author_user_id("alice");
  channel.set_author_device_id(1);
  out.Write("item_metadata_fuzz", "channel", Serialized(channel));

  client::ItemContext document_context{CountingId(0x10), CountingId(0x60), 2, 2};
  client::DocumentInfo info{"plan-ETARE-entrepot.pdf", "application/pdf", 123456};
  const auto document_info = client::SealDocumentInfo(fuzz::MetadataKey(), document_context, info);
  const auto wrapped =
      client::WrapDocumentKey(fuzz::WrapKey(), document_context, fuzz::DocumentKey());
  const auto blob_size = CiphertextSize(info.size);
  Require(document_info && wrapped && blob_size, "cannot seal document metadata");
  wire::v1::ItemManifestBody document;
  SetBytes(document.mutable_team_id(), document_context.team_id);
  SetBytes(document.mutable_item_id(), document_context.item_id);
  document.set_version(document_context.version);
  document.set_parent_version(document_context.version - 1);
  document.set_kind(std::string(client::kDocumentKind));
  document.set_key_generation(document_context.generation);
  SetBytes(document.mutable_wrapped_key(), *wrapped);
  SetBytes(document.mutable_encrypted_metadata(), *document_info);
  document.set_author_user_id("bob");
  document.set_author_device_id(2);
  out.Write("item_metadata_fuzz", "document-without-blob", Serialized(document));
  SetBytes(document.mutable_blob_id(), CountingId(0x70));
  document.set_blob_size(*blob_size);
  SetBytes(document.mutable_blob_hash(), FilledHash(0x77));
  out.Write("item_metadata_fuzz", "document", Serialized(document));
}

// key_history_fuzz input: [generation] || KeyHistory entry of OldTeamKey() under NewTeamKey().
void WriteKeyHistory(CorpusWriter& out) {
  for (const std::uint8_t generation : {std::uint8_t{2}, std::uint8_t{3}, std::uint8_t{200}}) {
    const auto entry = client::SealPreviousGeneration(fuzz::NewTeamKey(), fuzz::OldTeamKey(),
                                                      fuzz::FuzzTeamId(), generation - 1u,
                                                      generation);
    Require(entry.has_value(), "cannot seal a key history entry");
    const Bytes input = Concat({std::span<const std::uint8_t>(&generation, 1), *entry});
    out.Write("key_history_fuzz", "generation-" + std::to_string(generation), input);
  }
}

}  // namespace
}  // namespace coffre::crypto

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
    return 2;
  }
  coffre::crypto::CorpusWriter out{std::filesystem::path(argv[1])};
  coffre::crypto::WriteBundles(out);
  coffre::crypto::WriteKdfRecords(out);
  coffre::crypto::WriteDocumentStreams(out);
  coffre::crypto::WriteAeadMessages(out);
  coffre::crypto::WriteSealedBoxes(out);
  coffre::crypto::WriteSignatures(out);
  coffre::crypto::WriteSignalEdits(out);
  coffre::crypto::WritePeerMessages(out);
  coffre::crypto::WritePosts(out);
  coffre::crypto::WriteItemMetadata(out);
  coffre::crypto::WriteKeyHistory(out);
  return 0;
}
