// A small Prometheus registry: counters, gauges and histograms with fixed buckets, each in
// a family keyed by label values, rendered in the text exposition format 0.0.4
// (# HELP / # TYPE lines, then samples).
//
// Updates are lock-free atomics (counters, gauges) or take one short per-histogram lock,
// so they are cheap on the I/O threads. Metric objects live as long as their registry and
// never move: callers keep references.
//
// Label values must never hold user data (names, ids, addresses): they are bounded sets
// chosen by the relay, such as an HTTP status or a direction.
#ifndef COFFRE_SERVER_SRC_METRICS_H_
#define COFFRE_SERVER_SRC_METRICS_H_

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace coffre::server {

class Counter {
 public:
  void Increment(std::uint64_t amount = 1) { value_.fetch_add(amount, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(std::int64_t value) { value_.store(value, std::memory_order_relaxed); }
  void Add(std::int64_t amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  void Sub(std::int64_t amount) { value_.fetch_sub(amount, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Histogram {
 public:
  // `upper_bounds` must be strictly increasing; the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> upper_bounds_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Buckets for request latencies in seconds, from 1 ms to 10 s.
std::vector<double> LatencyBucketsSeconds();

enum class MetricType { kCounter, kGauge, kHistogram };

class MetricFamilyBase {
 public:
  MetricFamilyBase(std::string name, std::string help, MetricType type,
                   std::vector<std::string> label_names);
  virtual ~MetricFamilyBase() = default;
  MetricFamilyBase(const MetricFamilyBase&) = delete;
  MetricFamilyBase& operator=(const MetricFamilyBase&) = delete;

  const std::string& name() const { return name_; }
  void Render(std::string& out) const;

 protected:
  // A family holds at most this many label combinations; later combinations share one
  // child whose label values are all "overflow", so a bug cannot grow memory without end.
  static constexpr std::size_t kMaxChildren = 512;

  std::vector<std::string> NormaliseLabels(std::initializer_list<std::string_view> values) const;
  virtual void RenderChildren(std::string& out) const = 0;
  void AppendLabels(std::string& out, const std::vector<std::string>& values,
                    std::string_view extra_name = {}, std::string_view extra_value = {}) const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
};

template <typename Metric>
class MetricFamily final : public MetricFamilyBase {
 public:
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names, std::vector<double> buckets = {})
      : MetricFamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        buckets_(std::move(buckets)) {}

  // The child for these label values, created on first use. One value per label name;
  // missing values are empty, extra values are ignored.
  Metric& WithLabels(std::initializer_list<std::string_view> values) {
    std::vector<std::string> key = NormaliseLabels(values);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = children_.find(key);
    if (it != children_.end()) return *it->second;
    if (children_.size() >= kMaxChildren) {
      key.assign(label_names_.size(), "overflow");
      it = children_.find(key);
      if (it != children_.end()) return *it->second;
    }
    auto [inserted, ok] = children_.emplace(std::move(key), MakeChild());
    (void)ok;
    return *inserted->second;
  }

 private:
  std::unique_ptr<Metric> MakeChild() const {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      return std::make_unique<Histogram>(buckets_);
    } else {
      return std::make_unique<Metric>();
    }
  }
  void RenderChildren(std::string& out) const override;

  const std::vector<double> buckets_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

template <>
void MetricFamily<Counter>::RenderChildren(std::string& out) const;
template <>
void MetricFamily<Gauge>::RenderChildren(std::string& out) const;
template <>
void MetricFamily<Histogram>::RenderChildren(std::string& out) const;

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

class MetricsRegistry {
 public:
  // Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*, counters end in _total); a name
  // registered twice returns the first family when its type matches. Thread-safe.
  CounterFamily& AddCounterFamily(std::string name, std::string help,
                                  std::vector<std::string> label_names);
  GaugeFamily& AddGaugeFamily(std::string name, std::string help,
                              std::vector<std::string> label_names);
  HistogramFamily& AddHistogramFamily(std::string name, std::string help,
                                      std::vector<std::string> label_names,
                                      std::vector<double> buckets);
  // Unlabelled shorthands.
  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> buckets);

  // Every family in registration order, in the text exposition format.
  std::string Render() const;

 private:
  template <typename Family, typename... Args>
  Family& Add(std::string name, Args&&... args);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<MetricFamilyBase>> families_;
};

// Formats a sample value the way Prometheus reads it (shortest round-trip form, +Inf, NaN).
std::string FormatMetricValue(double value);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_METRICS_H_
