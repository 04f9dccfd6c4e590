// TlsSocket against a plain blocking OpenSSL client on another thread: data across many
// records, a read and a write outstanding at once with a peer that does not read, the
// three ways a peer ends a connection, and operations on a closed socket.
#include "tls_socket.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coffre/base/unique_handle.h"
#include "server/temp_dir.h"
#include "tls.h"

namespace coffre::server {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using SslContext = UniqueHandle<SSL_CTX, SSL_CTX_free>;
using Ssl = UniqueHandle<SSL, SSL_free>;
using Bio = UniqueHandle<BIO, BIO_free>;
using X509Cert = UniqueHandle<X509, X509_free>;
using EvpPkey = UniqueHandle<EVP_PKEY, EVP_PKEY_free>;
using namespace std::chrono_literals;

constexpr auto kWait = 10s;

// The relay's settings: TLS 1.3 only, a self-signed P-256 identity.
SslContext ServerContext(const TlsIdentity& identity) {
  SslContext context(SSL_CTX_new(TLS_server_method()));
  if (!context || SSL_CTX_set_min_proto_version(context.get(), TLS1_3_VERSION) != 1) return {};
  Bio cert_bio(BIO_new_mem_buf(identity.certificate_pem.data(),
                               static_cast<int>(identity.certificate_pem.size())));
  Bio key_bio(BIO_new_mem_buf(identity.private_key_pem.data(),
                              static_cast<int>(identity.private_key_pem.size())));
  X509Cert certificate(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  EvpPkey key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!certificate || !key || SSL_CTX_use_certificate(context.get(), certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(context.get(), key.get()) != 1) {
    return {};
  }
  return context;
}

std::string Pattern(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>('a' + (i * 7) % 26);
  return text;
}

// A blocking TLS client on its own socket; every call is bounded by SO_RCVTIMEO/SNDTIMEO.
class BlockingClient {
 public:
  explicit BlockingClient(bool max_tls12 = false)
      : context_(SSL_CTX_new(TLS_client_method())), max_tls12_(max_tls12) {}
  ~BlockingClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool Connect(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0 || !context_) return false;
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
    if (max_tls12_) SSL_CTX_set_max_proto_version(context_.get(), TLS1_2_VERSION);
    ssl_.reset(SSL_new(context_.get()));
    return ssl_ && SSL_set_fd(ssl_.get(), fd_) == 1 && SSL_connect(ssl_.get()) == 1;
  }

  bool WriteAll(std::string_view data) {
    std::size_t written = 0;
    return SSL_write_ex(ssl_.get(), data.data(), data.size(), &written) == 1 &&
           written == data.size();
  }

  std::optional<std::string> ReadExactly(std::size_t size) {
    std::string data(size, '\0');
    std::size_t done = 0;
    while (done < size) {
      std::size_t read = 0;
      if (SSL_read_ex(ssl_.get(), data.data() + done, size - done, &read) != 1) return std::nullopt;
      done += read;
    }
    return data;
  }

  // Reads until the server's close_notify; true if it came.
  bool ReadUntilCloseNotify() {
    char byte = 0;
    std::size_t read = 0;
    while (SSL_read_ex(ssl_.get(), &byte, 1, &read) == 1) {
    }
    return SSL_get_error(ssl_.get(), 0) == SSL_ERROR_ZERO_RETURN;
  }

  void SendCloseNotify() { SSL_shutdown(ssl_.get()); }
  // Ends the TCP stream (FIN) with no close_notify; the socket stays open for reading.
  void SendFin() { ::shutdown(fd_, SHUT_WR); }
  // Resets the connection (RST): SO_LINGER with a zero timeout, then close.
  void Reset() {
    const linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  SslContext context_;
  Ssl ssl_;
  int fd_ = -1;
  bool max_tls12_;
};

class TlsSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto identity = LoadOrCreateTlsIdentity(dir_.path());
    ASSERT_TRUE(identity);
    context_ = ServerContext(*identity);
    ASSERT_TRUE(context_);
    acceptor_.emplace(ioc_, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  }

  std::uint16_t port() const { return acceptor_->local_endpoint().port(); }

  // Accepts one connection (the client thread must be connecting).
  TlsSocket Accept() {
    tcp::socket socket(ioc_);
    acceptor_->accept(socket);
    return TlsSocket(std::move(socket), context_.get());
  }

  error_code Handshake(TlsSocket& stream) {
    error_code result = net::error::would_block;
    stream.async_handshake([&](error_code ec) { result = ec; });
    Run();
    return result;
  }

  // Runs the io_context until it has no more work, at most kWait.
  void Run() {
    ioc_.restart();
    ioc_.run_for(kWait);
  }

  testing::TempDir dir_;
  SslContext context_;
  net::io_context ioc_;
  std::optional<tcp::acceptor> acceptor_;
};

TEST_F(TlsSocketTest, DataLargerThanARecordGoesBothWays) {
  const std::string request = Pattern(100'000);
  std::optional<std::string> echoed;
  std::thread client([&, port = port()] {
    BlockingClient peer;
    if (!peer.Connect(port) || !peer.WriteAll(request)) return;
    echoed = peer.ReadExactly(request.size() + 3);
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));

  std::string received(request.size(), '\0');
  error_code read_ec = net::error::would_block;
  net::async_read(stream, net::buffer(received), [&](error_code ec, std::size_t) { read_ec = ec; });
  Run();
  ASSERT_FALSE(read_ec) << read_ec.message();
  EXPECT_EQ(received, request);

  // Several pieces, as Beast writes a frame header and its payload.
  const std::string head = "<<<";
  const std::array<net::const_buffer, 3> pieces{net::buffer(head), net::const_buffer(),
                                                net::buffer(received)};
  error_code write_ec = net::error::would_block;
  std::size_t written = 0;
  net::async_write(stream, pieces, [&](error_code ec, std::size_t n) {
    write_ec = ec;
    written = n;
  });
  Run();
  client.join();
  ASSERT_FALSE(write_ec) << write_ec.message();
  EXPECT_EQ(written, request.size() + 3);
  ASSERT_TRUE(echoed.has_value());
  EXPECT_EQ(*echoed, head + request);
}

TEST_F(TlsSocketTest, AReadAndAWriteCanBeOutstandingAtOnce) {
  // 4 MiB is far more than the socket buffers hold: the write waits for writability (WANT_WRITE)
  // while the read waits for readability, on one SSL object.
  const std::string bulk = Pattern(4 << 20);
  std::thread client([&, port = port()] {
    BlockingClient peer;
    if (!peer.Connect(port)) return;
    std::this_thread::sleep_for(100ms);  // let the server's write block first
    if (!peer.ReadExactly(bulk.size())) return;
    peer.WriteAll("ping!");
    peer.ReadUntilCloseNotify();
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));

  std::array<char, 5> reply{};
  error_code read_ec = net::error::would_block;
  error_code write_ec = net::error::would_block;
  net::async_read(stream, net::buffer(reply), [&](error_code ec, std::size_t) { read_ec = ec; });
  net::async_write(stream, net::buffer(bulk), [&](error_code ec, std::size_t) { write_ec = ec; });
  Run();
  EXPECT_FALSE(write_ec) << write_ec.message();
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_EQ(std::string(reply.data(), reply.size()), "ping!");

  error_code shutdown_ec = net::error::would_block;
  stream.async_shutdown([&](error_code ec) { shutdown_ec = ec; });
  Run();
  client.join();
  EXPECT_NE(shutdown_ec, net::error::would_block);
}

TEST_F(TlsSocketTest, ThePeersCloseNotifyEndsAReadWithEof) {
  std::thread client([port = port()] {
    BlockingClient peer;
    if (!peer.Connect(port)) return;
    peer.SendCloseNotify();
    std::this_thread::sleep_for(200ms);
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));
  std::array<char, 16> data{};
  error_code read_ec;
  stream.async_read_some(net::buffer(data), [&](error_code ec, std::size_t) { read_ec = ec; });
  Run();
  client.join();
  EXPECT_EQ(read_ec, net::error::eof) << read_ec.message();
}

TEST_F(TlsSocketTest, APeerThatEndsTcpWithoutCloseNotifyEndsAReadAsTruncated) {
  std::thread client([port = port()] {
    BlockingClient peer;
    if (!peer.Connect(port)) return;
    peer.SendFin();
    std::this_thread::sleep_for(200ms);
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));
  std::array<char, 16> data{};
  error_code read_ec;
  stream.async_read_some(net::buffer(data), [&](error_code ec, std::size_t) { read_ec = ec; });
  Run();
  client.join();
  EXPECT_EQ(read_ec, net::ssl::error::stream_truncated) << read_ec.message();
}

TEST_F(TlsSocketTest, APeerThatResetsTheConnectionEndsAReadWithTheSystemError) {
  std::thread client([port = port()] {
    BlockingClient peer;
    // Reading one byte first takes in the session tickets too, so that the reset is what
    // the server's next read meets.
    if (peer.Connect(port) && peer.ReadExactly(1)) peer.Reset();
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));
  error_code write_ec;
  net::async_write(stream, net::buffer("x", 1), [&](error_code ec, std::size_t) { write_ec = ec; });
  Run();
  ASSERT_FALSE(write_ec);
  std::array<char, 16> data{};
  error_code read_ec;
  stream.async_read_some(net::buffer(data), [&](error_code ec, std::size_t) { read_ec = ec; });
  Run();
  client.join();
  EXPECT_EQ(read_ec, net::error::connection_reset) << read_ec.message();
}

TEST_F(TlsSocketTest, ATls12ClientFailsTheHandshakeWithAnSslError) {
  std::thread client([port = port()] {
    BlockingClient peer(/*max_tls12=*/true);
    EXPECT_FALSE(peer.Connect(port));
  });
  TlsSocket stream = Accept();
  const error_code ec = Handshake(stream);
  client.join();
  EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
}

TEST_F(TlsSocketTest, ClosingTheSocketFailsPendingAndLaterOperations) {
  std::thread client([port = port()] {
    BlockingClient peer;
    if (peer.Connect(port)) std::this_thread::sleep_for(500ms);
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));

  std::array<char, 16> data{};
  error_code pending_ec;
  stream.async_read_some(net::buffer(data), [&](error_code ec, std::size_t) { pending_ec = ec; });
  // As a timeout does: close the lowest layer while the read waits.
  net::post(ioc_, [&] { stream.next_layer().close(); });
  Run();
  EXPECT_EQ(pending_ec, net::error::operation_aborted) << pending_ec.message();

  error_code later_ec;
  stream.async_write_some(net::buffer("x", 1), [&](error_code ec, std::size_t) { later_ec = ec; });
  Run();
  EXPECT_EQ(later_ec, net::error::bad_descriptor) << later_ec.message();
  client.join();
}

TEST_F(TlsSocketTest, ShutdownSendsCloseNotifyAndWaitsForThePeers) {
  bool client_saw_close_notify = false;
  std::thread client([&, port = port()] {
    BlockingClient peer;
    if (!peer.Connect(port)) return;
    client_saw_close_notify = peer.ReadUntilCloseNotify();
    peer.SendCloseNotify();
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));
  error_code shutdown_ec = net::error::would_block;
  stream.async_shutdown([&](error_code ec) { shutdown_ec = ec; });
  Run();
  client.join();
  EXPECT_TRUE(client_saw_close_notify);
  EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
}

TEST_F(TlsSocketTest, AnEmptyReadCompletesAtOnceWithoutWaitingForThePeer) {
  std::thread client([port = port()] {
    BlockingClient peer;
    if (peer.Connect(port)) std::this_thread::sleep_for(300ms);
  });
  TlsSocket stream = Accept();
  ASSERT_FALSE(Handshake(stream));
  error_code read_ec = net::error::would_block;
  std::size_t read = 1;
  bool inline_call = true;
  stream.async_read_some(net::mutable_buffer(), [&](error_code ec, std::size_t n) {
    EXPECT_FALSE(inline_call) << "completed inside the initiating call";
    read_ec = ec;
    read = n;
  });
  inline_call = false;
  const auto start = std::chrono::steady_clock::now();
  Run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 250ms);
  EXPECT_FALSE(read_ec);
  EXPECT_EQ(read, 0u);
  client.join();
}

}  // namespace
}  // namespace coffre::server
