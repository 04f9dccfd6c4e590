// The client's connection to its relay (docs/protocol.md, "Wire protocol" and "Blobs over
// HTTP"): a WebSocket over TLS 1.3 for the wire protocol and, from the first blob transfer
// on, a second TLS connection to the same relay for blob bytes over HTTP.
//
// The relay is trusted by the SHA-256 fingerprint of its TLS certificate (DER), which the
// profile pins; no certificate authority is consulted. Everything the relay sends is
// untrusted: every WebSocket message goes through protocol::ParseRelayFrame, messages are
// limited to protocol::kMaxFrameSize, and anything malformed or unexpected (a response to
// no request in flight, a text message, an HTTP reply that is not the protocol's) closes
// the connection with a clear Error. Nothing here logs, and nothing throws.
//
// The API is synchronous: every call returns within its timeout. The connection reads
// from the relay only inside calls (Call, NextPush, Authenticate, the blob calls), which is
// also when it answers the relay's keep-alive pings; a caller that wants pushes while idle
// waits in NextPush. A connection left unread for longer than the relay's idle timeout
// (60 s by default), or whose unread pushes fill the relay's write queue, is closed by the
// relay; later calls then fail with kIo and the caller connects again.
//
// A RelayConnection is not thread-safe: use it from one thread at a time.
#ifndef COFFRE_CLIENT_RELAY_CONNECTION_H_
#define COFFRE_CLIENT_RELAY_CONNECTION_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/client/relay_address.h"
#include "coffre/crypto/signature.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::client {

using ByteView = std::span<const std::uint8_t>;
using Bytes = std::vector<std::uint8_t>;

struct ConnectOptions {
  RelayAddress address;
  // The fingerprint the profile pinned. nullopt: trust on first use; the caller reads
  // relay_identity() after Connect, shows it to the person and pins it.
  std::optional<CertificateFingerprint> pinned;
  // Bound on TCP connect, TLS handshake and WebSocket upgrade together, and the default
  // bound of each later call.
  std::chrono::milliseconds timeout{10000};
};

// What a successful Authenticate leaves visible. The session token itself stays inside the
// connection (wiped when replaced or destroyed) and is used only for the blob calls.
struct SessionInfo {
  std::uint64_t expires_ms = 0;  // Unix time, milliseconds, as the relay states it
};

class RelayConnection {
 public:
  // Resolves the host, connects over TCP, completes a TLS 1.3 handshake (no older version;
  // SNI set to the host unless it is an IP address) and upgrades to a WebSocket on /v1/ws.
  // The SHA-256 of the relay's certificate (DER) is compared in constant time with
  // `options.pinned` inside the handshake, before the client's Finished message: on a
  // mismatch the handshake is aborted, nothing of ours reaches the relay, and Connect fails
  // with kUntrustedIdentity. Other failures: kInvalidArgument (empty host, timeout not
  // positive), kIo (name resolution, connect, handshake, upgrade refused, relay draining,
  // timeout), each with a sentence naming the step.
  static Result<std::unique_ptr<RelayConnection>> Connect(const ConnectOptions& options);

  // Closes as Close() does.
  ~RelayConnection();
  RelayConnection(const RelayConnection&) = delete;
  RelayConnection& operator=(const RelayConnection&) = delete;

  // The SHA-256 fingerprint of the certificate the relay presented: the pinned one, or the
  // one seen on first use.
  const CertificateFingerprint& relay_identity() const;

  // True until Close() or a failure that closed the WebSocket.
  bool is_open() const;

  // Sends `request` with a fresh id (whatever id it carries is replaced) and waits for the
  // response with that id, at most `timeout` (default: ConnectOptions::timeout). Pushes
  // that arrive meanwhile are kept for NextPush. A relay error is a successful result: the
  // Response holds an Error (see ErrorFromWire).
  // Fails without sending: kInvalidArgument for a timeout that is not positive, or as
  // protocol::ValidateRequest does for an invalid request; kResourceExhausted when the
  // frame would exceed kMaxFrameSize.
  // Fails after sending: kIo on a transport failure, a close by the relay or a timeout;
  // kCorrupt when the relay breaks the protocol (invalid frame, response to no request in
  // flight, oversized or text message); kResourceExhausted when the relay sends more
  // pushes than are kept unread. Every failure closes the connection except a timeout
  // waiting for the response: the connection then stays usable and a late response to the
  // abandoned request is dropped.
  Result<wire::v1::Response> Call(wire::v1::Request request,
                                  std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // The next push: a kept one first, else one read within `timeout` (0 only looks at what
  // has already arrived); nullopt when none came in time. Pushes kept before the
  // connection failed are still returned, one per call; then the failure is (as for Call).
  Result<std::optional<wire::v1::Push>> NextPush(std::chrono::milliseconds timeout);

  // Challenge-response login (docs/protocol.md, "Authentication"): asks for a challenge,
  // checks that the relay identity it names is the certificate this connection sees
  // (kUntrustedIdentity otherwise: a relay relaying another's challenge), signs it with
  // protocol::SignAuthChallenge and sends Authenticate. On success the session token is
  // kept for the blob calls. A relay refusal is an Error from ErrorFromWire
  // (kAuthenticationFailed for an unknown or revoked device or a wrong key); invalid
  // arguments fail as SignAuthChallenge does; transport failures as for Call.
  Result<SessionInfo> Authenticate(std::string_view user_id, std::uint32_t device_id,
                                   const crypto::SigningKey& device_key);

  // Blob bytes over HTTP on a second TLS connection to the relay (same address, same
  // certificate fingerprint), opened at the first blob call and kept alive between calls;
  // when the relay closed it while idle, the request is sent once more on a fresh one.
  // Both need a session (Authenticate) and 16-byte ids (kInvalidArgument otherwise).
  // Relay refusals map to Errors (HTTP JSON code, docs/protocol.md "Blobs over HTTP"):
  // SIZE_MISMATCH and MALFORMED -> kInvalidArgument, UNAUTHENTICATED and FORBIDDEN ->
  // kAuthenticationFailed, NOT_FOUND -> kNotFound, CONFLICT -> kConflict, TOO_LARGE,
  // QUOTA_EXCEEDED and RATE_LIMITED -> kResourceExhausted, UNAVAILABLE -> kIo,
  // INTERNAL -> kInternal; a reply outside the protocol -> kCorrupt. Transport failures
  // and timeouts -> kIo. `timeout` (positive) defaults to ConnectOptions::timeout. A
  // failure of the blob connection leaves the WebSocket as it was.
  //
  // PUT of `bytes` (1 byte to protocol::kMaxBlobChunk) at `offset`, which must be the
  // number of bytes the relay has received (BlobStatus tells after an interruption).
  Status PutBlobChunk(ByteView team_id, ByteView blob_id, std::uint64_t offset, ByteView bytes,
                      std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // GET of bytes `first` to `last_inclusive` of a complete blob (a Range request). The
  // relay clips a range that runs past the end of the blob, so the result may be shorter;
  // it is checked against the Content-Range the relay states. `first` past the end ->
  // kInvalidArgument.
  Result<Bytes> GetBlobRange(ByteView team_id, ByteView blob_id, std::uint64_t first,
                             std::uint64_t last_inclusive,
                             std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Sends a WebSocket close (1000, normal) and waits a short, bounded time for the relay's
  // answer; closes the blob connection. Best effort, idempotent. Every later call fails
  // with kIo; pushes already kept are still returned by NextPush.
  void Close();

 private:
  struct Impl;
  explicit RelayConnection(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// The Error for a relay's wire error code, with a fixed sentence (docs/protocol.md, "Error
// codes"): MALFORMED, ENROLMENT_INVALID, CHAIN_REJECTED and SIZE_MISMATCH ->
// kInvalidArgument; UNSUPPORTED_VERSION -> kUnsupported; UNAUTHENTICATED,
// AUTHENTICATION_FAILED, FORBIDDEN and INVALID_SIGNATURE -> kAuthenticationFailed;
// NOT_FOUND -> kNotFound; CONFLICT -> kConflict; ALREADY_EXISTS -> kAlreadyExists;
// TOO_LARGE, QUOTA_EXCEEDED and RATE_LIMITED -> kResourceExhausted; UNAVAILABLE -> kIo;
// INTERNAL -> kInternal; anything else -> kCorrupt.
Error ErrorFromWire(wire::v1::ErrorCode code);

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_RELAY_CONNECTION_H_
