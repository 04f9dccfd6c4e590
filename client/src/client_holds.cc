// Legal holds (decision 0018): a statement keeping the audit details of some months beyond
// retention, signed by an organisation admin and an auditor. The first signer writes the
// signed hold to a file and hands it over; the second checks what it says and who signed
// it, adds a signature and places it on the relay, which checks both again.
#include <algorithm>
#include <fstream>
#include <iterator>

#include "client_impl.h"
#include "coffre/audit/legal_hold.h"
#include "protobuf_bytes.h"

namespace coffre::client {
namespace {

LegalHoldView ViewOf(const audit::LegalHold& hold) {
  LegalHoldView view;
  for (const std::int64_t month : hold.months) view.months.push_back(audit::FormatMonth(month));
  view.reason = hold.reason;
  for (const auto& signature : hold.signatures) {
    view.signers.push_back(signature.user_id + "/" + std::to_string(signature.device_id));
  }
  return view;
}

Result<std::vector<std::uint8_t>> ReadHoldFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read the legal hold file");
  std::vector<std::uint8_t> bytes;
  char buffer[512];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    bytes.insert(bytes.end(), buffer, buffer + in.gcount());
    if (bytes.size() > audit::kMaxLegalHoldSize) {
      return Fail(ErrorCode::kInvalidArgument, "the file is larger than any legal hold");
    }
  }
  return bytes;
}

Status WriteHoldFile(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return Fail(ErrorCode::kAlreadyExists, "the output file already exists");
  std::filesystem::path partial = path;
  partial += ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(partial, ec);
      return Fail(ErrorCode::kIo, "cannot write the legal hold file (disk full?)");
    }
  }
  std::filesystem::rename(partial, path, ec);
  if (ec) {
    std::filesystem::remove(partial, ec);
    return Fail(ErrorCode::kIo, "cannot move the legal hold file into place");
  }
  return Ok();
}

}  // namespace

Result<LegalHoldView> Client::StartLegalHold(const std::vector<std::string>& months, std::string_view reason,
                                             const std::filesystem::path& output) {
  // The hold names the log this device witnesses, so it cannot be replayed on another.
  COFFRE_ASSIGN_OR_RETURN(const audit::Checkpoint checkpoint, impl_->WitnessAuditLog(nullptr, /*fresh=*/true));
  audit::LegalHold hold;
  hold.origin = checkpoint.origin;
  for (const std::string& month : months) {
    COFFRE_ASSIGN_OR_RETURN(const std::int64_t parsed, audit::ParseMonth(month));
    hold.months.push_back(parsed);
  }
  std::sort(hold.months.begin(), hold.months.end());
  hold.months.erase(std::unique(hold.months.begin(), hold.months.end()), hold.months.end());
  hold.issued_ms = NowMs();
  hold.reason = std::string(reason);
  COFFRE_RETURN_IF_ERROR(audit::SignLegalHold(hold, impl_->user_id, impl_->device_id, *impl_->device_key));
  COFFRE_ASSIGN_OR_RETURN(const auto bytes, audit::EncodeLegalHold(hold));
  COFFRE_RETURN_IF_ERROR(WriteHoldFile(output, bytes));
  return ViewOf(hold);
}

Result<LegalHoldView> Client::CompleteLegalHold(const std::filesystem::path& input) {
  COFFRE_ASSIGN_OR_RETURN(const auto bytes, ReadHoldFile(input));
  COFFRE_ASSIGN_OR_RETURN(audit::LegalHold hold, audit::DecodeLegalHold(bytes));
  if (hold.signatures.size() != 1) {
    return Fail(ErrorCode::kInvalidArgument, "the legal hold file should carry exactly one signature");
  }
  // The first signature must be the named user's certified device: checked against the
  // device list verified under that user's pinned identity key.
  COFFRE_RETURN_IF_ERROR(audit::VerifyLegalHoldSignatures(hold));
  const audit::LegalHoldSignature& first = hold.signatures[0];
  COFFRE_ASSIGN_OR_RETURN(const Peer signer, impl_->FetchPeer(first.user_id));
  const bool certified =
      !signer.key_changed &&
      std::any_of(signer.devices.begin(), signer.devices.end(), [&](const PeerDevice& device) {
        return device.device_id == first.device_id && !device.revoked &&
               device.signing_key.bytes() == first.device_key;
      });
  if (!certified) {
    return Fail(ErrorCode::kAuthenticationFailed, "the legal hold is not signed by a certified device of its signer");
  }
  COFFRE_ASSIGN_OR_RETURN(const audit::Checkpoint checkpoint, impl_->WitnessAuditLog(nullptr, /*fresh=*/true));
  if (hold.origin != checkpoint.origin) return Fail(ErrorCode::kInvalidArgument, "the legal hold names another audit log");
  COFFRE_RETURN_IF_ERROR(audit::SignLegalHold(hold, impl_->user_id, impl_->device_id, *impl_->device_key));
  COFFRE_ASSIGN_OR_RETURN(const auto encoded, audit::EncodeLegalHold(hold));
  wire::Request request;
  SetBytes(request.mutable_place_legal_hold()->mutable_hold(), encoded);
  COFFRE_ASSIGN_OR_RETURN(const wire::Response response, impl_->Call(request));
  if (!response.has_legal_hold_placed()) return Fail(ErrorCode::kCorrupt, "the relay answered a legal hold with something else");
  LegalHoldView view = ViewOf(hold);
  view.placed = true;
  view.index = response.legal_hold_placed().index();
  return view;
}

}  // namespace coffre::client
