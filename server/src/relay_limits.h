// Rate limits of the relay service: what one client may cost the relay per unit of time.
// Quotas (what one client may keep stored) are counted by the store, not here, so that they
// hold across restarts and across relay processes sharing one store.
//
// Every structure here is bounded: a client that invents new keys (addresses, devices)
// makes the oldest idle entries go, never memory grow without end.
#ifndef COFFRE_SERVER_SRC_RELAY_LIMITS_H_
#define COFFRE_SERVER_SRC_RELAY_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace coffre::server {

// A token bucket: `burst` tokens at most, refilled at `rate_per_ms`. Not thread-safe (the
// RateLimiter below locks around it). Times are from a steady clock, in milliseconds.
class TokenBucket {
 public:
  TokenBucket(double rate_per_ms, double burst, std::int64_t now_ms)
      : rate_per_ms_(rate_per_ms), burst_(burst), tokens_(burst), updated_ms_(now_ms) {}

  // Takes `cost` tokens if that many are there: returns 0. Otherwise takes nothing and
  // returns how many milliseconds until they would be (at least 1).
  std::uint64_t Take(double cost, std::int64_t now_ms);
  // Like Take, but when at least one token is there the whole cost is taken even if that
  // leaves the bucket in debt: for costs larger than the burst (an upload chunk larger
  // than one second of the byte rate), which would otherwise never pass.
  std::uint64_t TakeWithDebt(double cost, std::int64_t now_ms);
  // How long until `cost` tokens are there (0: now), taking nothing.
  std::uint64_t WaitFor(double cost, std::int64_t now_ms);
  // True when the bucket is full: forgetting it changes nothing.
  bool Full(std::int64_t now_ms) const;

 private:
  void Refill(std::int64_t now_ms);
  std::uint64_t MillisUntil(double cost) const;

  double rate_per_ms_;
  double burst_;
  double tokens_;
  std::int64_t updated_ms_;
};

// Token buckets by key (a device, a peer address), created full on first use. Thread-safe.
// Holds at most `max_keys` buckets: beyond that, full buckets are forgotten first, and if
// none is full the whole table is cleared (a flood of new keys then costs the flooder as
// much as anyone: the limit still applies per request).
class RateLimiter {
 public:
  RateLimiter(double rate_per_second, double burst, std::size_t max_keys = 100'000);

  // Takes `cost` tokens from `key`'s bucket: 0 when allowed, else the milliseconds to wait.
  std::uint64_t Take(std::string_view key, double cost = 1);
  // The same, allowing debt (see TokenBucket::TakeWithDebt).
  std::uint64_t TakeWithDebt(std::string_view key, double cost);
  // Milliseconds until `key` has one token (0: now), taking nothing.
  std::uint64_t WaitFor(std::string_view key);

 private:
  TokenBucket& BucketLocked(std::string_view key, std::int64_t now_ms);

  const double rate_per_ms_;
  const double burst_;
  const std::size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, TokenBucket> buckets_;
};

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_RELAY_LIMITS_H_
