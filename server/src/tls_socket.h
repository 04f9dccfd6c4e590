// TlsSocket: a TLS server stream that drives OpenSSL directly on a non-blocking TCP socket,
// for Beast's HTTP and WebSocket code (AsyncReadStream and AsyncWriteStream).
//
// Why not beast::ssl_stream: Asio's ssl::stream copies every record through a BIO pair and
// two buffers of its own, about 68 KiB per connection for its whole life, idle or not.
// Here OpenSSL reads from and writes to the socket itself, and with SSL_MODE_RELEASE_BUFFERS
// it frees its record buffers whenever they are empty: while a connection waits for its
// peer, no buffer is held at all (decision 0011).
//
// How: each operation makes one OpenSSL call at a time; when OpenSSL asks to read
// (SSL_ERROR_WANT_READ) or to write (SSL_ERROR_WANT_WRITE), the operation waits on the
// socket with async_wait and calls again. A read and a write may be outstanding at once, as
// Beast's WebSocket stream needs; they must run on one strand (the socket's executor), so
// that OpenSSL calls never overlap. Asio's async_wait on its edge-triggered epoll reactor
// misses no readiness: starting a wait re-arms the descriptor (EPOLL_CTL_MOD), which reports
// a socket that is already readable or writable.
//
// Errors: the peer's close_notify is net::error::eof; a peer that closes TCP without one is
// ssl::error::stream_truncated (as with Asio's stream); a TLS failure is an error in Asio's
// SSL category; an operation on a closed socket fails with net::error::bad_descriptor and
// makes no OpenSSL call, so a descriptor number reused by another connection is never
// touched.
//
// No deadlines here: HTTP sessions keep their own timer, and Beast's WebSocket timeouts close
// the lowest layer (the tcp::socket), which fails whatever is pending.
#ifndef COFFRE_SERVER_SRC_TLS_SOCKET_H_
#define COFFRE_SERVER_SRC_TLS_SOCKET_H_

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "coffre/base/unique_handle.h"

namespace coffre::server {

namespace tls_socket_internal {

namespace net = boost::asio;
using error_code = boost::system::error_code;

// What an OpenSSL call left to do.
enum class Want { kNothing, kRead, kWrite };

// The outcome of one OpenSSL call: finished (with `bytes` and `ec`), or waiting for the
// socket to become readable or writable before the same call is made again.
struct Step {
  Want want = Want::kNothing;
  std::size_t bytes = 0;
  error_code ec;
};

// The socket and the SSL object of one connection. Kept on the heap so that moving a
// TlsSocket (HTTP session to WebSocket session) never moves what an operation refers to.
// Each method is one OpenSSL call (two for Shutdown, as SSL_shutdown(3) describes), made
// with an empty error queue, and checks that the socket is still open first.
struct Connection {
  Connection(net::ip::tcp::socket tcp, SSL_CTX* context);

  Step Handshake();
  Step Read(net::mutable_buffer buffer);
  Step Write(net::const_buffer buffer);
  // Sends close_notify, then reads (and discards) until the peer's close_notify. Nothing is
  // sent after a fatal error (SSL_shutdown(3)) or before the handshake has finished.
  Step Shutdown();

  net::ip::tcp::socket socket;
  UniqueHandle<SSL, SSL_free> ssl;
  // Set once OpenSSL reports a fatal error: no close_notify is sent after that.
  bool failed = false;
  // Why `ssl` is null, if it is.
  error_code setup_error;

 private:
  // Turns the result of the OpenSSL call just made into a Step. `result` > 0 is success.
  Step Finish(int result, std::size_t bytes, int saved_errno);
  // Error for a call that cannot be made: socket closed, or no SSL object.
  Step Unusable() const;
};

// The most plaintext one TLS record carries (RFC 8446 §5.1).
inline constexpr std::size_t kMaxRecordPlaintext = 16384;

// One asynchronous operation: calls `call(connection)` until it no longer asks for the
// socket, waiting for readiness between calls. Completes with (error_code, bytes) or, with
// `kWithBytes` false, (error_code). Never completes inside the initiating function.
template <class Call, bool kWithBytes>
class Operation {
 public:
  Operation(Connection& connection, Call call) : connection_(connection), call_(std::move(call)) {}

  template <class Self>
  void operator()(Self& self, error_code ec = {}) {
    switch (phase_) {
      case Phase::kStart:
        break;
      case Phase::kWaiting:
        if (ec) return Complete(self, ec, 0);  // socket closed (a timeout) or cancelled
        break;
      case Phase::kPosted:
        return Complete(self, result_.ec, result_.bytes);
    }
    const bool first = phase_ == Phase::kStart;
    result_ = call_(connection_);
    if (result_.want != Want::kNothing) {
      phase_ = Phase::kWaiting;
      connection_.socket.async_wait(result_.want == Want::kRead ? net::ip::tcp::socket::wait_read
                                                                : net::ip::tcp::socket::wait_write,
                                    std::move(self));
      return;
    }
    if (first) {
      // Finished at once: complete from the executor, not from the initiating call.
      phase_ = Phase::kPosted;
      net::post(std::move(self));
      return;
    }
    Complete(self, result_.ec, result_.bytes);
  }

 private:
  enum class Phase { kStart, kWaiting, kPosted };

  template <class Self>
  static void Complete(Self& self, error_code ec, std::size_t bytes) {
    if constexpr (kWithBytes) {
      self.complete(ec, bytes);
    } else {
      self.complete(ec);
    }
  }

  Connection& connection_;
  Call call_;
  Phase phase_ = Phase::kStart;
  Step result_;
};

// Reads into the first non-empty buffer of the sequence (a read_some may fill less).
template <class MutableBufferSequence>
struct ReadCall {
  MutableBufferSequence buffers;
  Step operator()(Connection& connection) {
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      const net::mutable_buffer buffer(*it);
      if (buffer.size() > 0) return connection.Read(buffer);
    }
    return {};
  }
};

// Writes up to one record's worth. Beast hands over a frame or HTTP header as several small
// buffers; SSL_write takes one, so small pieces are first gathered into one allocation,
// held only while this write is pending, so that a frame costs one record and one send.
// OpenSSL requires a write it refused (WANT_WRITE) to be retried with the same bytes: the
// gathered copy, or the caller's buffer, which stays valid until completion.
template <class ConstBufferSequence>
class WriteCall {
 public:
  explicit WriteCall(const ConstBufferSequence& buffers) {
    const std::size_t total = net::buffer_size(buffers);
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      const net::const_buffer buffer(*it);
      if (buffer.size() == 0) continue;
      if (buffer.size() >= kMaxRecordPlaintext || buffer.size() == total) {
        chunk_ = buffer;
      } else {
        const std::size_t size = std::min(total, kMaxRecordPlaintext);
        gathered_ = std::make_unique_for_overwrite<std::uint8_t[]>(size);
        chunk_ = net::const_buffer(gathered_.get(), size);
        net::buffer_copy(net::mutable_buffer(gathered_.get(), size), buffers);
      }
      break;
    }
  }

  Step operator()(Connection& connection) {
    if (chunk_.size() == 0) return {};
    return connection.Write(chunk_);
  }

 private:
  std::unique_ptr<std::uint8_t[]> gathered_;
  net::const_buffer chunk_;
};

struct HandshakeCall {
  Step operator()(Connection& connection) { return connection.Handshake(); }
};

struct ShutdownCall {
  Step operator()(Connection& connection) { return connection.Shutdown(); }
};

}  // namespace tls_socket_internal

class TlsSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using next_layer_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = next_layer_type;

  // Takes an open, connected socket, makes it non-blocking (the user setting, which stays)
  // and creates the connection's SSL object from `context` in the server role, with
  // SSL_MODE_RELEASE_BUFFERS. `context` must outlive the TlsSocket. If OpenSSL or the socket
  // refuses, every operation fails (the caller then closes the socket as after any failed
  // handshake).
  TlsSocket(next_layer_type socket, SSL_CTX* context)
      : connection_(std::make_unique<tls_socket_internal::Connection>(std::move(socket), context)) {
  }
  // A moved-from TlsSocket may only be destroyed. Pending operations survive a move.
  TlsSocket(TlsSocket&&) noexcept = default;
  TlsSocket& operator=(TlsSocket&&) noexcept = default;

  executor_type get_executor() noexcept { return connection_->socket.get_executor(); }
  next_layer_type& next_layer() noexcept { return connection_->socket; }
  const next_layer_type& next_layer() const noexcept { return connection_->socket; }
  lowest_layer_type& lowest_layer() noexcept { return connection_->socket; }

  // The server side of the TLS handshake. Handler: void(error_code).
  template <class CompletionToken>
  auto async_handshake(CompletionToken&& token) {
    return Start<tls_socket_internal::HandshakeCall, false, void(boost::system::error_code)>(
        {}, std::forward<CompletionToken>(token));
  }

  // Reads some application data into `buffers`. Handler: void(error_code, std::size_t).
  template <class MutableBufferSequence, class CompletionToken>
  auto async_read_some(const MutableBufferSequence& buffers, CompletionToken&& token) {
    return Start<tls_socket_internal::ReadCall<MutableBufferSequence>, true,
                 void(boost::system::error_code, std::size_t)>(
        tls_socket_internal::ReadCall<MutableBufferSequence>{buffers},
        std::forward<CompletionToken>(token));
  }

  // Writes some of `buffers` (at most one record's worth when they are small pieces).
  // Handler: void(error_code, std::size_t).
  template <class ConstBufferSequence, class CompletionToken>
  auto async_write_some(const ConstBufferSequence& buffers, CompletionToken&& token) {
    return Start<tls_socket_internal::WriteCall<ConstBufferSequence>, true,
                 void(boost::system::error_code, std::size_t)>(
        tls_socket_internal::WriteCall<ConstBufferSequence>(buffers),
        std::forward<CompletionToken>(token));
  }

  // Sends close_notify and waits for the peer's, as Asio's ssl::stream::async_shutdown
  // does; an error (the peer closed TCP first) is normal here. Does not close the socket.
  // Handler: void(error_code).
  template <class CompletionToken>
  auto async_shutdown(CompletionToken&& token) {
    return Start<tls_socket_internal::ShutdownCall, false, void(boost::system::error_code)>(
        {}, std::forward<CompletionToken>(token));
  }

  // The same, blocking (waits on the socket with poll). For Beast's synchronous teardown.
  void shutdown(boost::system::error_code& ec);

 private:
  template <class Call, bool kWithBytes, class Signature, class CompletionToken>
  auto Start(Call call, CompletionToken&& token) {
    return boost::asio::async_compose<CompletionToken, Signature>(
        tls_socket_internal::Operation<Call, kWithBytes>(*connection_, std::move(call)), token,
        connection_->socket);
  }

  std::unique_ptr<tls_socket_internal::Connection> connection_;
};

// WebSocket teardown for a TlsSocket, found by argument-dependent lookup from Beast's close
// and read operations: the TLS shutdown (close_notify both ways), then Beast's TCP teardown
// (shutdown send, read to end of stream, close). Both roles are handled alike.
void teardown(boost::beast::role_type role, TlsSocket& stream, boost::system::error_code& ec);

namespace tls_socket_internal {

class TeardownOp {
 public:
  TeardownOp(TlsSocket& stream, boost::beast::role_type role) : stream_(stream), role_(role) {}

  template <class Self>
  void operator()(Self& self, error_code ec = {}) {
    switch (step_) {
      case 0:
        step_ = 1;
        stream_.async_shutdown(std::move(self));
        return;
      case 1: {
        // The TLS shutdown's error does not matter: the peer may well close first.
        step_ = 2;
        using boost::beast::websocket::async_teardown;
        async_teardown(role_, stream_.next_layer(), std::move(self));
        return;
      }
      default:
        self.complete(ec);
    }
  }

 private:
  TlsSocket& stream_;
  boost::beast::role_type role_;
  int step_ = 0;
};

}  // namespace tls_socket_internal

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsSocket& stream, TeardownHandler&& handler) {
  boost::asio::async_compose<TeardownHandler, void(boost::system::error_code)>(
      tls_socket_internal::TeardownOp(stream, role), handler, stream.next_layer());
}

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_TLS_SOCKET_H_
