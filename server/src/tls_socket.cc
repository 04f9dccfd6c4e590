#include "tls_socket.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cerrno>
#include <cstdint>

namespace coffre::server {
namespace tls_socket_internal {
namespace {

using BioMethod = UniqueHandle<BIO_METHOD, BIO_meth_free>;
using Bio = UniqueHandle<BIO, BIO_free>;

int Descriptor(BIO* bio) {
  return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
}

// OpenSSL's socket BIO writes with write(2): a peer that reset the connection would raise
// SIGPIPE and end the process. This BIO uses send(2) with MSG_NOSIGNAL (EPIPE instead) and
// recv(2), and sets the retry flags on EAGAIN so that SSL_get_error reports WANT_READ or
// WANT_WRITE.
int BioWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  if (size <= 0) return 0;
  ssize_t sent;
  do {
    sent = ::send(Descriptor(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(bio);
  return static_cast<int>(sent);
}

int BioRead(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  if (data == nullptr || size <= 0) return 0;
  ssize_t received;
  do {
    received = ::recv(Descriptor(bio), data, static_cast<std::size_t>(size), 0);
  } while (received < 0 && errno == EINTR);
  if (received == 0) {
    // End of stream: BIO_eof() lets OpenSSL tell an unexpected EOF from other errors.
    BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
  } else if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    BIO_set_retry_read(bio);
  }
  return static_cast<int>(received);
}

long BioControl(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;  // nothing is buffered here
    case BIO_CTRL_EOF:
      return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int BioCreate(BIO* bio) {
  BIO_set_data(bio, nullptr);
  return 1;
}

// Built once; lives until exit (its destructor runs before OpenSSL's own atexit cleanup,
// which was registered earlier, when OpenSSL initialised).
const BIO_METHOD* SocketMethod() {
  static const BioMethod method = [] {
    BioMethod built(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coffre-socket"));
    if (built && BIO_meth_set_write(built.get(), BioWrite) == 1 &&
        BIO_meth_set_read(built.get(), BioRead) == 1 &&
        BIO_meth_set_ctrl(built.get(), BioControl) == 1 &&
        BIO_meth_set_create(built.get(), BioCreate) == 1) {
      return built;
    }
    return BioMethod();
  }();
  return method.get();
}

}  // namespace

Connection::Connection(net::ip::tcp::socket tcp, SSL_CTX* context) : socket(std::move(tcp)) {
  // Non-blocking as the user's setting, not only Asio's internal one: Beast's TCP teardown
  // restores the user setting when it is done, and restoring "blocking" would clear the
  // descriptor's O_NONBLOCK under OpenSSL.
  socket.non_blocking(true, setup_error);
  if (setup_error) return;
  const BIO_METHOD* method = SocketMethod();
  UniqueHandle<SSL, SSL_free> created(method != nullptr && context != nullptr ? SSL_new(context)
                                                                              : nullptr);
  Bio bio(created ? BIO_new(method) : nullptr);
  if (!bio) {
    setup_error = net::error::no_memory;
    return;
  }
  BIO_set_data(bio.get(),
               reinterpret_cast<void*>(static_cast<std::intptr_t>(socket.native_handle())));
  BIO_set_init(bio.get(), 1);
  // One BIO for both directions: the SSL object takes its one reference (SSL_set_bio(3)).
  BIO* both = bio.release();
  SSL_set_bio(created.get(), both, both);
  // As Asio's engine does: a write may complete in parts (write_some), may be retried from
  // another address, and record buffers are freed whenever they are empty.
  SSL_set_mode(created.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  // Read what the socket holds in one recv(2) rather than a record header and its body in
  // two. The read buffer is still freed once OpenSSL has handed out all it holds.
  SSL_set_read_ahead(created.get(), 1);
  SSL_set_accept_state(created.get());
  ssl = std::move(created);
}

Step Connection::Unusable() const {
  if (!ssl) return {Want::kNothing, 0, setup_error};
  return {Want::kNothing, 0, net::error::bad_descriptor};
}

Step Connection::Finish(int result, std::size_t bytes, int saved_errno) {
  if (result > 0) return {Want::kNothing, bytes, {}};
  Step step;
  switch (SSL_get_error(ssl.get(), result)) {
    case SSL_ERROR_WANT_READ:
      step.want = Want::kRead;
      break;
    case SSL_ERROR_WANT_WRITE:
      step.want = Want::kWrite;
      break;
    case SSL_ERROR_ZERO_RETURN:
      // The peer's close_notify (RFC 8446 §6.1).
      step.ec = net::error::eof;
      break;
    case SSL_ERROR_SYSCALL:
      failed = true;
      if (ERR_peek_error() == 0 && saved_errno != 0) {
        step.ec = error_code(saved_errno, boost::system::system_category());
      } else {
        step.ec = net::ssl::error::stream_truncated;
      }
      break;
    default: {
      failed = true;
      const unsigned long error = ERR_get_error();
      if (ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        // The peer closed TCP without close_notify (OpenSSL 3 reports it this way).
        step.ec = net::ssl::error::stream_truncated;
      } else if (error != 0) {
        step.ec = error_code(static_cast<int>(error), net::error::get_ssl_category());
      } else {
        step.ec = net::error::fault;
      }
      break;
    }
  }
  // Leave nothing in this thread's error queue for the next connection's calls.
  ERR_clear_error();
  return step;
}

Step Connection::Handshake() {
  if (!ssl || !socket.is_open()) return Unusable();
  ERR_clear_error();
  errno = 0;
  const int result = SSL_do_handshake(ssl.get());
  const int saved_errno = errno;
  return Finish(result, 0, saved_errno);
}

Step Connection::Read(net::mutable_buffer buffer) {
  if (!ssl || !socket.is_open()) return Unusable();
  ERR_clear_error();
  errno = 0;
  std::size_t read = 0;
  const int result = SSL_read_ex(ssl.get(), buffer.data(), buffer.size(), &read);
  const int saved_errno = errno;
  return Finish(result, read, saved_errno);
}

Step Connection::Write(net::const_buffer buffer) {
  if (!ssl || !socket.is_open()) return Unusable();
  ERR_clear_error();
  errno = 0;
  std::size_t written = 0;
  const int result = SSL_write_ex(ssl.get(), buffer.data(), buffer.size(), &written);
  const int saved_errno = errno;
  return Finish(result, written, saved_errno);
}

Step Connection::Shutdown() {
  if (!ssl || !socket.is_open()) return Unusable();
  if (failed || SSL_is_init_finished(ssl.get()) != 1) return {};
  ERR_clear_error();
  errno = 0;
  int result = SSL_shutdown(ssl.get());
  if (result == 0) {
    // Our close_notify is out; the second call reads up to the peer's (SSL_shutdown(3)).
    ERR_clear_error();
    result = SSL_shutdown(ssl.get());
  }
  const int saved_errno = errno;
  if (result == 1) return {};
  return Finish(result, 0, saved_errno);
}

}  // namespace tls_socket_internal

void TlsSocket::shutdown(boost::system::error_code& ec) {
  ec = {};
  for (;;) {
    const tls_socket_internal::Step step = connection_->Shutdown();
    if (step.want == tls_socket_internal::Want::kNothing) {
      ec = step.ec;
      return;
    }
    connection_->socket.wait(step.want == tls_socket_internal::Want::kRead
                                 ? next_layer_type::wait_read
                                 : next_layer_type::wait_write,
                             ec);
    if (ec) return;
  }
}

void teardown(boost::beast::role_type role, TlsSocket& stream, boost::system::error_code& ec) {
  stream.shutdown(ec);
  // As Beast's teardown for Asio's ssl::stream: the TCP teardown runs whatever the TLS
  // shutdown gave, and its error is reported only if the TLS shutdown succeeded.
  boost::system::error_code tcp_ec;
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec ? tcp_ec : ec);
}

}  // namespace coffre::server
