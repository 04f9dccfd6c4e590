// The relay service, HTTP half: blob bytes (docs/protocol.md "Blobs over HTTP").
//
//   PUT  /v1/blobs/<team hex>/<blob hex>?offset=N   append the body at N (N = bytes received)
//   GET  /v1/blobs/<team hex>/<blob hex>            the complete blob, or one Range
//   HEAD /v1/blobs/<team hex>/<blob hex>            Content-Length = bytes received so far
//
// Every request carries "Authorization: Bearer <token hex>" (a session token from
// Authenticate). Errors are small JSON bodies {"code": "...", "message": "..."} with the
// wire code's name, so clients handle HTTP and WebSocket failures alike.
#include <chrono>
#include <functional>
#include <string>

#include "coffre/protocol/limits.h"
#include "log.h"
#include "relay_service_internal.h"
#include "relay_util.h"

namespace coffre::server::internal {
namespace {

void AppendJsonField(std::string& out, std::string_view key, std::string_view value) {
  out += '"';
  out += key;
  out += "\":\"";
  AppendJsonEscaped(out, value);
  out += '"';
}

std::vector<std::uint8_t> ToBody(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

// The JSON that PUT, HEAD and status errors share about an upload's progress.
std::string ProgressJson(const storage::BlobRecord& blob) {
  return "{\"size\":" + std::to_string(blob.size) +
         ",\"received\":" + std::to_string(blob.received) +
         ",\"complete\":" + (blob.complete ? "true" : "false") + "}";
}

}  // namespace

HttpReply RelayService::HttpError(unsigned status, wire::ErrorCode code, std::string_view message,
                                  std::optional<std::uint64_t> received) {
  errors_.WithLabels({WireCodeName(code)}).Increment();
  // Debug level, as for WebSocket errors: clients cause most of them.
  Log(LogLevel::kDebug, "http_error", {{"status", status}, {"code", WireCodeName(code)}});
  HttpReply reply;
  reply.status = status;
  reply.content_type = "application/json";
  std::string json = "{";
  AppendJsonField(json, "code", WireCodeName(code));
  json += ',';
  AppendJsonField(json, "message", message);
  if (received) json += ",\"received\":" + std::to_string(*received);
  json += '}';
  reply.body = ToBody(json);
  return reply;
}

std::mutex& RelayService::BlobLock(const Bytes& team_id, const Bytes& blob_id) {
  const std::size_t hash = std::hash<std::string_view>{}(AsText(team_id)) * 31 +
                           std::hash<std::string_view>{}(AsText(blob_id));
  return blob_locks_[hash % kBlobLockStripes];
}

HttpReply RelayService::OnHttp(const HttpRequestInfo& request, std::span<const std::uint8_t> body) {
  const auto start = std::chrono::steady_clock::now();
  std::string method = "http_other";
  HttpReply reply = [&]() -> HttpReply {
    if (draining_.load(std::memory_order_acquire)) {
      HttpReply busy = HttpError(503, wire::ERROR_CODE_UNAVAILABLE, "relay is draining");
      busy.headers.emplace_back("Retry-After", "2");
      return busy;
    }
    const std::string_view path =
        std::string_view(request.target).substr(0, std::string_view(request.target).find('?'));
    if (!path.starts_with(kBlobPathPrefix)) {
      return HttpError(404, wire::ERROR_CODE_NOT_FOUND, "no such resource");
    }
    const bool put = request.method == "PUT";
    const bool get = request.method == "GET";
    const bool head = request.method == "HEAD";
    if (!put && !get && !head) {
      HttpReply refused = HttpError(405, wire::ERROR_CODE_MALFORMED, "method not allowed");
      refused.headers.emplace_back("Allow", "GET, HEAD, PUT");
      return refused;
    }
    method = put ? "http_put" : (get ? "http_get" : "http_head");
    const std::optional<BlobTarget> target = ParseBlobTarget(request.target);
    if (!target) return HttpError(400, wire::ERROR_CODE_MALFORMED, "malformed blob path");

    // Authentication: the same per-address budget of failures as the WebSocket.
    if (const std::uint64_t wait = auth_limiter_.WaitFor(request.peer_address); wait != 0) {
      HttpReply limited =
          HttpError(429, wire::ERROR_CODE_RATE_LIMITED, "too many failed authentications");
      limited.headers.emplace_back("Retry-After", std::to_string((wait + 999) / 1000));
      return limited;
    }
    const auto token = ParseBearerToken(request.authorization);
    if (!token) {
      CountAuthFailure(request.peer_address);
      return HttpError(401, wire::ERROR_CODE_UNAUTHENTICATED, "bearer session token required");
    }
    const Sha256Digest token_hash = Sha256(*token);
    auto session = store_->LookupSession(token_hash, Now());
    if (!session) {
      Log(LogLevel::kError, "store_error", {{"context", session.error().context()}});
      return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
    }
    if (!session->has_value()) {
      CountAuthFailure(request.peer_address);
      return HttpError(401, wire::ERROR_CODE_UNAUTHENTICATED,
                       "session token is unknown or expired");
    }
    const Principal principal{(*session)->user_id, (*session)->device_id, (*session)->expires_ms};
    if (const std::uint64_t wait =
            request_limiter_.Take(DeviceLimitKey(principal.user_id, principal.device_id));
        wait != 0) {
      HttpReply limited = HttpError(429, wire::ERROR_CODE_RATE_LIMITED, "too many requests");
      limited.headers.emplace_back("Retry-After", std::to_string((wait + 999) / 1000));
      return limited;
    }

    // Membership, per the store's copy of the team chain's member list.
    auto role = RoleOf(target->team_id, principal.user_id);
    if (!role) {
      Log(LogLevel::kError, "store_error", {{"context", role.error().context()}});
      return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
    }
    const TeamAccess access = put ? TeamAccess::kWrite : TeamAccess::kDownload;
    AuditEvent fetch;
    fetch.type = audit::EventType::kBlobFetched;
    fetch.user_id = principal.user_id;
    fetch.device_id = principal.device_id;
    fetch.team_id = target->team_id;
    fetch.item_id = target->blob_id;
    std::optional<crypto::X25519PublicKey> auditor;
    if (!put && !head) fetch.team_auditor = TeamAuditorKey(target->team_id, auditor);
    if (!role->has_value() || !AccessAllowed(**role, access)) {
      if (!put && !head) {
        fetch.result = audit::EventResult::kRefused;
        fetch.details.reason = "not allowed in this team";
        (void)Record(fetch, request.peer_address);
      }
      return HttpError(403, wire::ERROR_CODE_FORBIDDEN, "not allowed in this team");
    }
    if (put) {
      if (const std::uint64_t wait =
              upload_limiter_.TakeWithDebt(DeviceLimitKey(principal.user_id, principal.device_id),
                                           static_cast<double>(body.size()));
          wait != 0) {
        HttpReply limited = HttpError(429, wire::ERROR_CODE_RATE_LIMITED, "upload rate exceeded");
        limited.headers.emplace_back("Retry-After", std::to_string((wait + 999) / 1000));
        return limited;
      }
      return HandleBlobPut(*target, body);
    }
    HttpReply served = HandleBlobGet(*target, request, head);
    // Blob bytes leave only once their fetch is recorded.
    if (!head && served.file && !Record(fetch, request.peer_address)) {
      return HttpError(503, wire::ERROR_CODE_UNAVAILABLE, "the audit log cannot record this");
    }
    return served;
  }();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  request_latency_.WithLabels({method}).Observe(seconds);
  return reply;
}

HttpReply RelayService::HandleBlobPut(const BlobTarget& target,
                                      std::span<const std::uint8_t> body) {
  if (!target.offset) {
    return HttpError(400, wire::ERROR_CODE_MALFORMED, "offset query parameter required");
  }
  if (body.size() > protocol::kMaxBlobChunk) {
    return HttpError(413, wire::ERROR_CODE_TOO_LARGE, "chunk is larger than 4 MiB");
  }
  // One upload of a given blob at a time: offsets are checked and advanced under this lock.
  std::lock_guard<std::mutex> lock(BlobLock(target.team_id, target.blob_id));
  auto found = store_->GetBlob(target.team_id, target.blob_id);
  if (!found) {
    Log(LogLevel::kError, "store_error", {{"context", found.error().context()}});
    return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
  }
  if (!found->has_value()) return HttpError(404, wire::ERROR_CODE_NOT_FOUND, "no such blob");
  storage::BlobRecord& blob = **found;
  if (auto recovered = RecoverBlob(blob); !recovered) {
    Log(LogLevel::kError, "store_error", {{"context", recovered.error().context()}});
    return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
  }
  if (blob.complete) {
    return HttpError(409, wire::ERROR_CODE_CONFLICT, "blob is already complete", blob.received);
  }
  if (*target.offset != blob.received) {
    return HttpError(409, wire::ERROR_CODE_CONFLICT, "offset is not the number of bytes received",
                     blob.received);
  }
  if (body.size() > blob.size - blob.received) {
    return HttpError(400, wire::ERROR_CODE_SIZE_MISMATCH, "more bytes than the declared size",
                     blob.received);
  }
  if (!body.empty()) {
    if (auto written = blob_files_.WriteAt(blob.team_id, blob.blob_id, blob.received, body);
        !written) {
      Log(LogLevel::kError, "blob_write_failed", {{"context", written.error().context()}});
      return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
    }
    const std::uint64_t received = blob.received + body.size();
    const bool complete = received == blob.size;
    if (complete) {
      if (auto finished = blob_files_.Finish(blob.team_id, blob.blob_id, blob.size); !finished) {
        Log(LogLevel::kError, "blob_finish_failed", {{"context", finished.error().context()}});
        return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
      }
    }
    // Only now, with the bytes on disk, does the store record them.
    if (auto updated = store_->UpdateBlobProgress(blob.team_id, blob.blob_id, received, complete);
        !updated) {
      Log(LogLevel::kError, "store_error", {{"context", updated.error().context()}});
      return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
    }
    blob.received = received;
    blob.complete = complete;
    blob_bytes_in_.Increment(body.size());
  }
  HttpReply reply;
  reply.status = 200;
  reply.content_type = "application/json";
  reply.body = ToBody(ProgressJson(blob));
  return reply;
}

HttpReply RelayService::HandleBlobGet(const BlobTarget& target, const HttpRequestInfo& request,
                                      bool head) {
  auto found = store_->GetBlob(target.team_id, target.blob_id);
  if (!found) {
    Log(LogLevel::kError, "store_error", {{"context", found.error().context()}});
    return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
  }
  if (!found->has_value()) return HttpError(404, wire::ERROR_CODE_NOT_FOUND, "no such blob");
  storage::BlobRecord& blob = **found;
  if (auto recovered = RecoverBlob(blob); !recovered) {
    Log(LogLevel::kError, "store_error", {{"context", recovered.error().context()}});
    return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
  }
  HttpReply reply;
  reply.headers.emplace_back("X-Coffre-Blob-Size", std::to_string(blob.size));
  reply.headers.emplace_back("X-Coffre-Blob-Received", std::to_string(blob.received));
  reply.headers.emplace_back("X-Coffre-Blob-Complete", blob.complete ? "true" : "false");

  if (!blob.complete) {
    if (!head) {
      return HttpError(409, wire::ERROR_CODE_CONFLICT, "blob upload is not complete",
                       blob.received);
    }
    // HEAD during an upload: Content-Length is what has been received, where a resumed
    // upload continues.
    reply.status = 200;
    if (blob.received > 0) {
      reply.file = blob_files_.PartPath(blob.team_id, blob.blob_id);
      reply.file_offset = 0;
      reply.file_length = blob.received;
    }
    return reply;
  }
  const auto file_size = blob_files_.FinalSize(blob.team_id, blob.blob_id);
  if (!file_size || *file_size != blob.size) {
    Log(LogLevel::kError, "blob_file_missing");
    return HttpError(500, wire::ERROR_CODE_INTERNAL, "internal error");
  }
  reply.headers.emplace_back("Accept-Ranges", "bytes");
  reply.file = blob_files_.FinalPath(blob.team_id, blob.blob_id);
  if (request.range) {
    const auto range = ParseByteRange(*request.range, blob.size);
    if (!range) {
      HttpReply refused =
          HttpError(416, wire::ERROR_CODE_MALFORMED, "range not satisfiable or not supported");
      refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(blob.size));
      return refused;
    }
    reply.status = 206;
    reply.file_offset = range->first;
    reply.file_length = range->length;
    reply.headers.emplace_back("Content-Range",
                               "bytes " + std::to_string(range->first) + "-" +
                                   std::to_string(range->first + range->length - 1) + "/" +
                                   std::to_string(blob.size));
  } else {
    reply.status = 200;
    reply.file_offset = 0;
    reply.file_length = blob.size;
  }
  if (!head) blob_bytes_out_.Increment(reply.file_length);
  return reply;
}

}  // namespace coffre::server::internal
