#include "relay_limits.h"

#include <algorithm>
#include <cmath>

#include "relay_util.h"

namespace coffre::server {

// --- TokenBucket -------------------------------------------------------------------------

void TokenBucket::Refill(std::int64_t now_ms) {
  if (now_ms > updated_ms_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - updated_ms_) * rate_per_ms_);
    updated_ms_ = now_ms;
  }
}

std::uint64_t TokenBucket::MillisUntil(double cost) const {
  if (tokens_ >= cost) return 0;
  if (rate_per_ms_ <= 0) return 60'000;
  const double wait = std::ceil((cost - tokens_) / rate_per_ms_);
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::min(wait, 3.6e6)));
}

std::uint64_t TokenBucket::Take(double cost, std::int64_t now_ms) {
  Refill(now_ms);
  if (tokens_ >= cost) {
    tokens_ -= cost;
    return 0;
  }
  return MillisUntil(cost);
}

std::uint64_t TokenBucket::TakeWithDebt(double cost, std::int64_t now_ms) {
  Refill(now_ms);
  if (tokens_ >= 1) {
    tokens_ -= cost;
    return 0;
  }
  return MillisUntil(1);
}

std::uint64_t TokenBucket::WaitFor(double cost, std::int64_t now_ms) {
  Refill(now_ms);
  return MillisUntil(cost);
}

bool TokenBucket::Full(std::int64_t now_ms) const {
  const double elapsed = static_cast<double>(std::max<std::int64_t>(0, now_ms - updated_ms_));
  return tokens_ + elapsed * rate_per_ms_ >= burst_;
}

// --- RateLimiter -------------------------------------------------------------------------

RateLimiter::RateLimiter(double rate_per_second, double burst, std::size_t max_keys)
    : rate_per_ms_(rate_per_second / 1000.0), burst_(std::max(burst, 1.0)), max_keys_(max_keys) {}

TokenBucket& RateLimiter::BucketLocked(std::string_view key, std::int64_t now_ms) {
  auto it = buckets_.find(std::string(key));
  if (it != buckets_.end()) return it->second;
  if (buckets_.size() >= max_keys_) {
    std::erase_if(buckets_, [now_ms](auto& entry) { return entry.second.Full(now_ms); });
    if (buckets_.size() >= max_keys_) buckets_.clear();
  }
  return buckets_.emplace(std::string(key), TokenBucket(rate_per_ms_, burst_, now_ms))
      .first->second;
}

std::uint64_t RateLimiter::Take(std::string_view key, double cost) {
  const std::int64_t now = SteadyNowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  return BucketLocked(key, now).Take(cost, now);
}

std::uint64_t RateLimiter::TakeWithDebt(std::string_view key, double cost) {
  const std::int64_t now = SteadyNowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  return BucketLocked(key, now).TakeWithDebt(cost, now);
}

std::uint64_t RateLimiter::WaitFor(std::string_view key) {
  const std::int64_t now = SteadyNowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) return 0;
  return it->second.WaitFor(1, now);
}

}  // namespace coffre::server
