#include "metrics.h"

#include <gtest/gtest.h>

namespace coffre::server {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithHelpAndType) {
  MetricsRegistry registry;
  Counter& requests = registry.AddCounter("test_requests_total", "Requests seen.");
  Gauge& open = registry.AddGauge("test_open", "Open things.");
  requests.Increment();
  requests.Increment(4);
  open.Add(3);
  open.Sub(1);
  EXPECT_EQ(registry.Render(),
            "# HELP test_requests_total Requests seen.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total 5\n"
            "# HELP test_open Open things.\n"
            "# TYPE test_open gauge\n"
            "test_open 2\n");
}

TEST(MetricsTest, LabelledFamiliesRenderEachChildAndEscapeValues) {
  MetricsRegistry registry;
  CounterFamily& family =
      registry.AddCounterFamily("test_responses_total", "Responses.", {"status", "kind"});
  family.WithLabels({"200", "plain"}).Increment(2);
  family.WithLabels({"404", "quote\"back\\slash\nline"}).Increment();
  EXPECT_EQ(&family.WithLabels({"200", "plain"}), &family.WithLabels({"200", "plain"}));
  const std::string text = registry.Render();
  EXPECT_NE(text.find("test_responses_total{status=\"200\",kind=\"plain\"} 2\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("test_responses_total{status=\"404\",kind=\"quote\\\"back\\\\slash\\nline\"} 1\n"),
      std::string::npos)
      << text;
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry registry;
  Histogram& latency = registry.AddHistogram("test_seconds", "Latency.", {0.25, 1});
  latency.Observe(0.125);
  latency.Observe(0.25);  // "le": a value on a bound counts in that bucket
  latency.Observe(0.5);
  latency.Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP test_seconds Latency.\n"
            "# TYPE test_seconds histogram\n"
            "test_seconds_bucket{le=\"0.25\"} 2\n"
            "test_seconds_bucket{le=\"1\"} 3\n"
            "test_seconds_bucket{le=\"+Inf\"} 4\n"
            "test_seconds_sum 7.875\n"
            "test_seconds_count 4\n");
}

TEST(MetricsTest, SameNameReturnsTheSameFamily) {
  MetricsRegistry registry;
  Counter& a = registry.AddCounter("test_total", "x");
  Counter& b = registry.AddCounter("test_total", "x");
  EXPECT_EQ(&a, &b);
}

TEST(MetricsTest, LabelCardinalityIsBounded) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounterFamily("test_total", "x", {"v"});
  for (int i = 0; i < 2000; ++i) family.WithLabels({std::to_string(i)}).Increment();
  const std::string text = registry.Render();
  EXPECT_NE(text.find("test_total{v=\"overflow\"}"), std::string::npos);
  std::size_t lines = 0;
  for (const char c : text) lines += c == '\n';
  EXPECT_LE(lines, 2u + 513u);
}

TEST(MetricsTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(10), "10");
}

}  // namespace
}  // namespace coffre::server
