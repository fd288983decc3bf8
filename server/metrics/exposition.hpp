// metrics/exposition.hpp: the Prometheus text format, version 0.0.4: writing samples (label
// value escapes, numbers) and summing several expositions into one (one per worker process).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace uvs::metrics {

// The Content-Type of the text format.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// A label value with the format's escapes: backslash, double quote and newline.
std::string escape_label(std::string_view v);
// A sample value: integers as integers, others in the shortest form that reads back the same;
// "+Inf", "-Inf", "NaN".
std::string format_value(double v);
// Appends "# HELP name help\n# TYPE name type\n" (help escaped: backslash and newline).
void family_head(std::string &out, std::string_view name, std::string_view type,
                 std::string_view help);
// Appends "name{labels} value\n"; labels is the text between the braces ("" for none).
void sample(std::string &out, std::string_view name, std::string_view labels, double v);
void sample(std::string &out, std::string_view name, std::string_view labels, uint64_t v);

// Sums expositions (each as render() writes it): samples with the same name and the same label
// set (in any order) are added, whatever the type: counters, gauges, and a histogram's buckets,
// _sum and _count. A family or series that only some inputs have is kept as it is. The result
// keeps the first input's order (HELP and TYPE from the first input that has them); series met
// later go after the last sample of their family with the same labels (apart from `le`), so
// each histogram stays together. Lines that do not parse are skipped (counted in *skipped when
// given); timestamps are dropped.
std::string sum(std::span<const std::string> expositions, size_t *skipped = nullptr);

}  // namespace uvs::metrics
