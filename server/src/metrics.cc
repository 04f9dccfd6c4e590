#include "metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace coffre::server {
namespace {

void AppendLabelValue(std::string& out, std::string_view value) {
  // Text format escaping: backslash, double quote and line feed.
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void AppendHelp(std::string& out, std::string_view help) {
  // HELP text escapes only backslash and line feed.
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  // The first bucket whose bound is >= value: Prometheus buckets are "less or equal".
  const auto it = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  const auto index = static_cast<std::size_t>(it - upper_bounds_.begin());
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[index];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  std::lock_guard<std::mutex> lock(mutex_);
  std::uint64_t running = 0;
  snapshot.cumulative_counts.reserve(counts_.size());
  for (const std::uint64_t c : counts_) {
    running += c;
    snapshot.cumulative_counts.push_back(running);
  }
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

MetricFamilyBase::MetricFamilyBase(std::string name, std::string help, MetricType type,
                                   std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

std::vector<std::string> MetricFamilyBase::NormaliseLabels(
    std::initializer_list<std::string_view> values) const {
  std::vector<std::string> key;
  key.reserve(label_names_.size());
  auto it = values.begin();
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    key.emplace_back(it != values.end() ? std::string(*it++) : std::string());
  }
  return key;
}

void MetricFamilyBase::AppendLabels(std::string& out, const std::vector<std::string>& values,
                                    std::string_view extra_name,
                                    std::string_view extra_value) const {
  if (label_names_.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += label_names_[i];
    out += "=\"";
    AppendLabelValue(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    AppendLabelValue(out, extra_value);
    out += '"';
  }
  out += '}';
}

void MetricFamilyBase::Render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  AppendHelp(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += TypeName(type_);
  out += '\n';
  std::lock_guard<std::mutex> lock(mutex_);
  RenderChildren(out);
}

template <>
void MetricFamily<Counter>::RenderChildren(std::string& out) const {
  for (const auto& [labels, counter] : children_) {
    out += name_;
    AppendLabels(out, labels);
    out += ' ';
    out += std::to_string(counter->value());
    out += '\n';
  }
}

template <>
void MetricFamily<Gauge>::RenderChildren(std::string& out) const {
  for (const auto& [labels, gauge] : children_) {
    out += name_;
    AppendLabels(out, labels);
    out += ' ';
    out += std::to_string(gauge->value());
    out += '\n';
  }
}

template <>
void MetricFamily<Histogram>::RenderChildren(std::string& out) const {
  for (const auto& [labels, histogram] : children_) {
    const Histogram::Snapshot snapshot = histogram->Take();
    for (std::size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
      out += name_;
      out += "_bucket";
      const std::string bound = i < snapshot.upper_bounds.size()
                                    ? FormatMetricValue(snapshot.upper_bounds[i])
                                    : std::string("+Inf");
      AppendLabels(out, labels, "le", bound);
      out += ' ';
      out += std::to_string(snapshot.cumulative_counts[i]);
      out += '\n';
    }
    out += name_;
    out += "_sum";
    AppendLabels(out, labels);
    out += ' ';
    out += FormatMetricValue(snapshot.sum);
    out += '\n';
    out += name_;
    out += "_count";
    AppendLabels(out, labels);
    out += ' ';
    out += std::to_string(snapshot.count);
    out += '\n';
  }
}

template <typename Family, typename... Args>
Family& MetricsRegistry::Add(std::string name, Args&&... args) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& family : families_) {
    if (family->name() == name) {
      if (auto* same = dynamic_cast<Family*>(family.get())) return *same;
      // Same name, other type: a programming error. Keep the first and give the caller a
      // detached family under a distinct name so rendering stays valid.
      name += "_conflict";
    }
  }
  auto family = std::make_unique<Family>(std::move(name), std::forward<Args>(args)...);
  Family& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

CounterFamily& MetricsRegistry::AddCounterFamily(std::string name, std::string help,
                                                 std::vector<std::string> label_names) {
  return Add<CounterFamily>(std::move(name), std::move(help), MetricType::kCounter,
                            std::move(label_names));
}

GaugeFamily& MetricsRegistry::AddGaugeFamily(std::string name, std::string help,
                                             std::vector<std::string> label_names) {
  return Add<GaugeFamily>(std::move(name), std::move(help), MetricType::kGauge,
                          std::move(label_names));
}

HistogramFamily& MetricsRegistry::AddHistogramFamily(std::string name, std::string help,
                                                     std::vector<std::string> label_names,
                                                     std::vector<double> buckets) {
  return Add<HistogramFamily>(std::move(name), std::move(help), MetricType::kHistogram,
                              std::move(label_names), std::move(buckets));
}

Counter& MetricsRegistry::AddCounter(std::string name, std::string help) {
  return AddCounterFamily(std::move(name), std::move(help), {}).WithLabels({});
}

Gauge& MetricsRegistry::AddGauge(std::string name, std::string help) {
  return AddGaugeFamily(std::move(name), std::move(help), {}).WithLabels({});
}

Histogram& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                         std::vector<double> buckets) {
  return AddHistogramFamily(std::move(name), std::move(help), {}, std::move(buckets))
      .WithLabels({});
}

std::string MetricsRegistry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& family : families_) family->Render(out);
  return out;
}

}  // namespace coffre::server
