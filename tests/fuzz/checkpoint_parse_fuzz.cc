// Fuzz target: audit::ParseAndVerifyCheckpoint on the whole input as a signed note, against
// the fixed log key of audit_fuzz_inputs.h (checkpoints arrive from the relay and, as gossip,
// inside other members' posts); and NoteVerifier::FromVerifierKey on the whole input (the
// pinned key in a configuration file).
//
// Invariants (a broken one aborts: it is a finding):
//   - a refusal is kInvalidArgument (malformed, another origin) or kAuthenticationFailed
//     (no valid signature by the log key), with one context for the latter;
//   - an accepted checkpoint is exactly what the log key signed: the input starts with its
//     FormatCheckpoint text and a blank line, OpenNote agrees on the text, and the input
//     holds the signature line SignCheckpoint makes for it (Ed25519 is deterministic: an
//     accepted checkpoint without it would be a forgery);
//   - a verifier key that parses prints back as the input (one spelling per key).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "audit_fuzz_inputs.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/signed_note.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "checkpoint_parse_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

const char* first_signature_context = nullptr;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::audit;
  using coffre::ErrorCode;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto checkpoint =
      ParseAndVerifyCheckpoint(input, coffre::fuzz::AuditLogVerifier(), coffre::fuzz::kAuditOrigin);
  if (!checkpoint) {
    const ErrorCode code = checkpoint.error().code();
    Require(code == ErrorCode::kInvalidArgument || code == ErrorCode::kAuthenticationFailed,
            "a refused checkpoint is malformed or not signed");
    if (code == ErrorCode::kAuthenticationFailed) {
      if (first_signature_context == nullptr) {
        first_signature_context = checkpoint.error().context().data();
      }
      Require(checkpoint.error().context().data() == first_signature_context,
              "every signature failure has the same context");
    }
  } else {
    const auto text = FormatCheckpoint(*checkpoint);
    Require(text.has_value(), "an accepted checkpoint formats");
    Require(input.substr(0, text->size() + 1) == *text + "\n",
            "the input starts with the checkpoint's text and a blank line");
    const auto opened = OpenNote(input, coffre::fuzz::AuditLogVerifier());
    Require(opened.has_value() && *opened == *text, "OpenNote agrees on the text");
    const auto signed_note =
        SignCheckpoint(*checkpoint, coffre::fuzz::AuditLogKey(), coffre::fuzz::kAuditOrigin);
    Require(signed_note.has_value(), "an accepted checkpoint can be signed");
    // Ed25519 is deterministic: the log's signature line is the one SignCheckpoint writes.
    const std::string_view line = std::string_view(*signed_note).substr(text->size() + 1);
    Require(input.find(line) != std::string_view::npos,
            "an accepted checkpoint carries the log's own signature line");
  }

  const auto verifier = NoteVerifier::FromVerifierKey(input);
  if (!verifier) {
    Require(verifier.error().code() == ErrorCode::kInvalidArgument,
            "FromVerifierKey refuses with kInvalidArgument");
  } else {
    Require(verifier->VerifierKey() == input, "a parsed verifier key prints back the same");
  }
  return 0;
}
