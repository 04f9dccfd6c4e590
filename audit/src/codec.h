// Private: the big-endian writer and bounds-checked reader behind the canonical encodings
// of entries, sealed details and client events.
#ifndef COFFRE_AUDIT_SRC_CODEC_H_
#define COFFRE_AUDIT_SRC_CODEC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace coffre::audit::internal {

// Big-endian writer into a buffer sized in advance.
class Writer {
 public:
  explicit Writer(std::span<std::uint8_t> out) : out_(out) {}

  void U8(std::uint8_t value) { out_[at_++] = value; }
  void U16(std::uint16_t value) { Integer(value, 2); }
  void U32(std::uint32_t value) { Integer(value, 4); }
  void U64(std::uint64_t value) { Integer(value, 8); }
  void Raw(std::span<const std::uint8_t> bytes) {
    if (!bytes.empty()) std::memcpy(out_.data() + at_, bytes.data(), bytes.size());
    at_ += bytes.size();
  }
  void Raw(std::string_view text) {
    Raw(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
  std::size_t size() const { return at_; }

 private:
  void Integer(std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) {
      out_[at_++] = static_cast<std::uint8_t>(value >> (8 * (width - 1 - i)));
    }
  }

  std::span<std::uint8_t> out_;
  std::size_t at_ = 0;
};

// Big-endian reader that fails (returns false) on a short input instead of reading past it.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  bool U8(std::uint8_t& value) {
    if (in_.empty()) return false;
    value = in_[0];
    in_ = in_.subspan(1);
    return true;
  }
  bool U16(std::uint16_t& value) { return Integer(value); }
  bool U32(std::uint32_t& value) { return Integer(value); }
  bool U64(std::uint64_t& value) { return Integer(value); }
  bool Bytes(std::size_t size, std::span<const std::uint8_t>& out) {
    if (in_.size() < size) return false;
    out = in_.first(size);
    in_ = in_.subspan(size);
    return true;
  }
  template <std::size_t N>
  bool Array(std::array<std::uint8_t, N>& out) {
    std::span<const std::uint8_t> bytes;
    if (!Bytes(N, bytes)) return false;
    std::memcpy(out.data(), bytes.data(), N);
    return true;
  }
  bool Text(std::size_t size, std::string& out) {
    std::span<const std::uint8_t> bytes;
    if (!Bytes(size, bytes)) return false;
    out.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  template <typename T>
  bool Integer(T& value) {
    if (in_.size() < sizeof(T)) return false;
    std::uint64_t read = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) read = read << 8 | in_[i];
    value = static_cast<T>(read);
    in_ = in_.subspan(sizeof(T));
    return true;
  }

  std::span<const std::uint8_t> in_;
};

// An optional fixed-size field: u8 length (0 or N) || bytes.
template <std::size_t N>
void WriteOptional(Writer& out, const std::optional<std::array<std::uint8_t, N>>& field) {
  if (!field) {
    out.U8(0);
    return;
  }
  out.U8(static_cast<std::uint8_t>(N));
  out.Raw(*field);
}

template <std::size_t N>
bool ReadOptional(Reader& in, std::optional<std::array<std::uint8_t, N>>& field) {
  std::uint8_t length;
  if (!in.U8(length)) return false;
  if (length == 0) {
    field.reset();
    return true;
  }
  std::span<const std::uint8_t> bytes;
  if (length != N || !in.Bytes(N, bytes)) return false;
  field.emplace();
  std::memcpy(field->data(), bytes.data(), N);
  return true;
}

template <std::size_t N>
std::size_t OptionalSize(const std::optional<std::array<std::uint8_t, N>>& field) {
  return 1 + (field ? N : 0);
}

}  // namespace coffre::audit::internal

#endif  // COFFRE_AUDIT_SRC_CODEC_H_
